package ship

import (
	"context"
	"errors"
	"fmt"
	"time"

	nomad "github.com/hashicorp/nomad/api"

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
	e := Entry{Version: p.Version, SHA256: p.SHA256, Source: p.Source, Path: string(d.Path), Started: time.Now(), By: TokenName(ctx, c.Nomad)}
	record := func(res Result, exhausted bool, msg string) {
		e.Result, e.Exhausted, e.Message, e.Ended = res, exhausted, msg, time.Now()
		if err := h.Add(context.WithoutCancel(ctx), e); err != nil {
			pr.Say("recording the rollout in %s failed: %v", h.Path(), err)
		}
	}

	if d.Path == Hot {
		pr.Say("health gate: %s", c.Gate())
		herr := rollout.Run(ctx, c, rollout.Plan{
			Target: rollout.Target{Version: p.Version, Source: p.Source, SHA256: p.SHA256, Rollout: o.Rollout,
				PreCommands: o.PreCommands},
			StepTimeout: o.StepTimeout,
		}, pr.Hot)
		if herr == nil {
			record(Succeeded, false, "")
			return e, nil
		}
		var re *rollout.Error
		switch {
		case !errors.As(herr, &re):
			record(Failed, false, "hot: "+herr.Error())
			return e, herr
		case len(re.Failures) > 0:
			msg := "hot: " + herr.Error() + "; not every allocation went back, so no full deployment follows"
			record(Failed, false, msg)
			return e, errors.New(msg)
		case o.NoFallback:
			record(Failed, false, "hot: "+herr.Error()+" (-no-fallback)")
			return e, herr
		}
		pr.Say("hot canary failed and every allocation went back: %v", herr)
		pr.Say("falling back: the same release as a full canary deployment")
		e.Path = "hot, then full"
		ferr := deployFull(ctx, c, p, o.PreCommands, pr)
		if ferr != nil {
			record(Failed, true, fmt.Sprintf("hot: %v; full: %v", herr, ferr))
			return e, fmt.Errorf("hot canary: %v; full deployment: %w", herr, ferr)
		}
		record(FellBack, false, "hot: "+herr.Error())
		return e, nil
	}

	ferr := deployFull(ctx, c, p, o.PreCommands, pr)
	if ferr != nil {
		record(Failed, true, "full: "+ferr.Error())
		return e, ferr
	}
	record(Succeeded, false, "")
	return e, nil
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
	if err := rollout.Deploy(ctx, c.Nomad, job, c.Namespace, pr.Deploy); err != nil {
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
