package ship

import (
	"context"
	"errors"
	"fmt"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
)

// Options say what to ship and how.
type Options struct {
	Package *Package
	// Force is a path the operator forced, or empty.
	Force Path
	// NoFallback keeps a failed hot canary from going on to the full
	// deployment.
	NoFallback bool
	// PreCommands run once: in the hot canary's first allocation before
	// it installs, or as the job's pre_commands on the full path.
	PreCommands [][]string
	// StepTimeout bounds each allocation's hot upgrade and health gate.
	StepTimeout time.Duration
	// Rollout names this rollout in the targets it writes.
	Rollout string
	// AllowRefused ships a version the history refuses (-force).
	AllowRefused bool
	// Expect, if set, is the version the package must hold: the one a
	// deploy pointer names.
	Expect string
}

// Progress hears what a ship does.
type Progress struct {
	Say    func(format string, args ...any)
	Hot    func(rollout.Event)
	Deploy func(rollout.DeployProgress)
}

// RefusedError is a ship refused before anything changed: a version whose
// last rollout failed on every path, or a forced path the package cannot
// take.
type RefusedError struct {
	Entry  Entry
	Forced error
}

func (e *RefusedError) Error() string {
	if e.Forced != nil {
		return e.Forced.Error()
	}
	return fmt.Sprintf("%s (sha256 %.12s) failed on every path on %s (%s: %s); fix the release and ship a new version, "+
		"or pass -force", e.Entry.Version, e.Entry.SHA256, e.Entry.Ended.Format(time.RFC3339), e.Entry.Path, e.Entry.Message)
}

// Run ships o.Package to the job's beam task c and records the rollout in
// h. It returns the history entry it wrote and, unless the release runs
// everywhere at the end, why not.
func Run(ctx context.Context, c *rollout.Nomad, h *History, o Options, pr Progress) (Entry, error) {
	if pr.Say == nil {
		pr.Say = func(string, ...any) {}
	}
	p := o.Package
	if o.Expect != "" && p.Version != o.Expect {
		return Entry{}, &RefusedError{Forced: fmt.Errorf("the pointer names %s, but %s holds %s %s", o.Expect,
			fetch.Redact(p.Source), p.Name, p.Version)}
	}
	entries, err := h.Entries(ctx)
	if err != nil {
		return Entry{}, err
	}
	if r := Refused(entries, p.Version, p.SHA256); r != nil && !o.AllowRefused {
		return Entry{}, &RefusedError{Entry: *r}
	}
	allocs, err := c.Allocs(ctx)
	if err != nil {
		return Entry{}, err
	}
	d, err := Force(Decide(p, allocs), o.Force)
	if err != nil {
		return Entry{}, &RefusedError{Forced: err}
	}
	pr.Say("%s", d.Reason)
	if d.Current {
		return Entry{}, nil
	}
	e := Entry{Version: p.Version, SHA256: p.SHA256, Source: fetch.Redact(p.Source), Path: string(d.Path), Started: time.Now(),
		By: TokenName(ctx, c.Nomad)}
	// hadHot says whether the package had a hot path here: a failed full
	// deployment exhausts its paths only if hot was tried or impossible.
	hadHot := Decide(p, allocs).Path == Hot
	record := func(res Result, exhausted bool, msg string) error {
		e.Result, e.Exhausted, e.Message, e.Ended = res, exhausted, msg, time.Now()
		err := h.Add(context.WithoutCancel(ctx), e)
		if err != nil {
			pr.Say("recording the rollout in %s failed: %v", h.Path(), err)
		}
		return err
	}
	// fullFailed records a failed full deployment: it exhausts the
	// version's paths only if the deployment itself failed (not the
	// tool, nor an interrupt), and hot was tried or impossible.
	fullFailed := func(hotTried bool, msg string, ferr error) error {
		var de *rollout.DeployError
		exhausted := errors.As(ferr, &de) && ctx.Err() == nil && (hotTried || !hadHot)
		if rerr := record(Failed, exhausted, msg); rerr != nil && exhausted {
			return fmt.Errorf("%s; and it could not be recorded, so it is not refused next time: %w", msg, rerr)
		}
		return errors.New(msg)
	}

	if d.Path == Hot {
		pr.Say("health gate: %s", c.Gate())
		herr := rollout.Run(ctx, c, rollout.Plan{
			Target: rollout.Target{Version: p.Version, Source: p.Source, SHA256: p.SHA256, Rollout: o.Rollout,
				PreCommands: o.PreCommands},
			StepTimeout: o.StepTimeout,
		}, pr.Hot)
		if herr == nil {
			_ = record(Succeeded, false, "")
			return e, nil
		}
		var re *rollout.Error
		why := ""
		switch {
		case !errors.As(herr, &re):
			why = ""
		case len(re.Failures) > 0:
			why = "not every allocation went back"
		case o.NoFallback:
			why = "-no-fallback"
		case re.Stage == hotspec.StagePreCommand:
			why = "a pre-command failed, and a full deployment would run it again in every new allocation"
		case ctx.Err() != nil:
			why = "interrupted"
		default:
			if back, err := wentBack(ctx, c, allocs, p.Version); err != nil || !back {
				why = "not every allocation is back on its version"
			}
		}
		if re == nil || why != "" {
			msg := "hot: " + herr.Error()
			if why != "" {
				msg += "; no full deployment follows: " + why
			}
			_ = record(Failed, false, msg)
			return e, errors.New(msg)
		}
		pr.Say("hot canary failed and every allocation went back: %v", herr)
		pr.Say("falling back: the same release as a full canary deployment")
		e.Path = "hot, then full"
		if ferr := deployFull(ctx, c, p, o.PreCommands, pr); ferr != nil {
			return e, fullFailed(true, fmt.Sprintf("hot: %v; full: %v", herr, ferr), ferr)
		}
		_ = record(FellBack, false, "hot: "+herr.Error())
		return e, nil
	}

	if ferr := deployFull(ctx, c, p, o.PreCommands, pr); ferr != nil {
		return e, fullFailed(false, "full: "+ferr.Error(), ferr)
	}
	_ = record(Succeeded, false, "")
	return e, nil
}

// wentBack reports whether every allocation that ran before a failed hot
// canary runs its old version again.
func wentBack(ctx context.Context, c *rollout.Nomad, before []rollout.Alloc, target string) (bool, error) {
	now, err := c.Allocs(ctx)
	if err != nil {
		return false, err
	}
	was := map[string]string{}
	for _, a := range before {
		was[a.ID] = a.Version
	}
	for _, a := range now {
		if v, ok := was[a.ID]; ok && v != target && a.Version != v {
			return false, nil
		}
	}
	return true, nil
}

// deployFull updates the registered job's release block (and its
// pre_commands) and follows the deployment to its end.
func deployFull(ctx context.Context, c *rollout.Nomad, p *Package, pre [][]string, pr Progress) error {
	q := (&nomad.QueryOptions{Namespace: c.Namespace}).WithContext(ctx)
	job, _, err := c.Nomad.Jobs().Info(c.Job, q)
	if err != nil {
		return fmt.Errorf("read job %s: %w", c.Job, err)
	}
	before := rollout.ReleaseSources(job)
	if err := rollout.SetRelease(job, c.Group, c.Task, p.Source, p.SHA256, pre); err != nil {
		return err
	}
	pr.Say("health gate: %s", rollout.DeployGate(job))
	if err := rollout.Deploy(ctx, c.Nomad, job, c.Namespace, pr.Deploy, rollout.StopAtPromotion); err != nil {
		var de *rollout.DeployError
		if errors.As(err, &de) {
			if reasons := rollout.FailureReasons(context.WithoutCancel(ctx), c.Nomad, c.Job, c.Namespace); len(reasons) > 0 {
				return fmt.Errorf("%w: %s", err, reasons[0])
			}
		}
		return err
	}
	changed := map[string]bool{}
	for k, src := range rollout.ReleaseSources(job) {
		changed[k] = before[k] != src
	}
	if err := rollout.ClearStaleTargets(ctx, c.Nomad, job, c.Namespace, changed); err != nil {
		return fmt.Errorf("the deployment succeeded, but clearing old hot-upgrade targets failed: %w", err)
	}
	return nil
}

// TokenName is the name of the ACL token in use, or its accessor, for
// the history.
func TokenName(ctx context.Context, c *nomad.Client) string {
	t, _, err := c.ACLTokens().Self((&nomad.QueryOptions{}).WithContext(ctx))
	if err != nil || t == nil {
		return ""
	}
	if t.Name != "" {
		return t.Name
	}
	return t.AccessorID
}
