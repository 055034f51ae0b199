// Package rollout is the hot canary: it hot-upgrades a job's allocations
// one at a time, waits for each to report success and pass its health
// gate (its Consul checks, or the driver's BEAM-level health when it has
// none), and on any failure hot-downgrades the allocations it already
// upgraded.
//
// It talks to the beam driver only through Nomad: it writes targets into
// the task's hot-upgrade Variable (one key per allocation) and reads the
// outcome from the allocation's task events, whose beam.hot details the
// driver sets.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// Target is what an allocation should run; the JSON of a Variable value.
type Target = hotspec.Target

// Alloc is one running allocation of the job.
type Alloc struct {
	ID    string
	Name  string // job.group[N]
	Index int
	// Version is the release version it runs now, from its task events.
	Version string
	// Release is the name of the release it runs, and ERTS its emulator
	// version (empty when the driver does not say).
	Release, ERTS string
}

// Outcome is the driver's report of one hot upgrade.
type Outcome struct {
	// Result is succeeded, current, refused, failed or invalid.
	Result  hotspec.Outcome
	Message string
	// Took is the driver's own time for the upgrade.
	Took time.Duration
	// Stage is hotspec.StagePreCommand when a target's pre-command
	// refused the upgrade.
	Stage string
}

// OK reports whether the allocation now runs the target.
func (o Outcome) OK() bool { return o.Result.OK() }

// Cluster is what a rollout needs from Nomad and Consul.
type Cluster interface {
	// Allocs returns the job's running allocations of the task group.
	Allocs(ctx context.Context) ([]Alloc, error)
	// SetTargets changes keys of the hot-upgrade Variable: a nil target
	// deletes the key. It must not lose concurrent writes.
	SetTargets(ctx context.Context, set map[string]*Target) error
	// Mark returns the time of the allocation's newest task event, by
	// the Nomad client's clock.
	Mark(ctx context.Context, alloc string) (time.Time, error)
	// WaitOutcome waits for the driver's outcome of the upgrade of alloc
	// to version, reported after since.
	WaitOutcome(ctx context.Context, alloc, version string, since time.Time) (Outcome, error)
	// WaitHealthy waits until the allocation passes its health gate, and
	// says what passed.
	WaitHealthy(ctx context.Context, alloc string) (string, error)
}

// AllKey is the Variable key that applies to allocations without their own.
const AllKey = hotspec.AllKey

// Event is one step of a rollout, for progress output.
type Event struct {
	Alloc   Alloc
	Step    string // upgrading, upgraded, healthy, failed, reverting, reverted, revert-failed, done
	Message string
	At      time.Time
	Took    time.Duration
}

// Plan is one hot canary.
type Plan struct {
	// Target is what every allocation should run. Its PreCommands run
	// once: in the first allocation upgraded, before it installs. The
	// others, and the AllKey that later allocations follow, get the
	// target without them.
	Target Target
	// StepTimeout bounds each allocation's upgrade and health wait.
	StepTimeout time.Duration
}

// Error is a failed rollout.
type Error struct {
	Alloc  Alloc
	Reason string
	// Stage is the failed upgrade's hotspec.DetailStage, if any.
	Stage    string
	Reverted []string // allocations hot-downgraded again
	Failures []string // reverts that failed
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("hot upgrade of %s failed: %s", e.Alloc.Name, e.Reason)
	if len(e.Reverted) > 0 {
		msg += fmt.Sprintf("; reverted %d allocation(s)", len(e.Reverted))
	}
	if len(e.Failures) > 0 {
		msg += fmt.Sprintf("; %d revert(s) failed: %v", len(e.Failures), e.Failures)
	}
	return msg
}

// Run performs the hot canary. progress, if not nil, sees every step.
func Run(ctx context.Context, c Cluster, p Plan, progress func(Event)) error {
	if progress == nil {
		progress = func(Event) {}
	}
	if p.StepTimeout <= 0 {
		p.StepTimeout = 2 * time.Minute
	}
	allocs, err := c.Allocs(ctx)
	if err != nil {
		return err
	}
	if len(allocs) == 0 {
		return errors.New("the job has no running allocations to upgrade")
	}
	sort.Slice(allocs, func(i, j int) bool {
		if allocs[i].Index != allocs[j].Index {
			return allocs[i].Index < allocs[j].Index
		}
		return allocs[i].ID < allocs[j].ID
	})
	emit := func(a Alloc, step, msg string, took time.Duration) {
		progress(Event{Alloc: a, Step: step, Message: msg, At: time.Now(), Took: took})
	}

	var done []Alloc
	for _, a := range allocs {
		if a.Version == p.Target.Version {
			emit(a, "upgraded", "already runs "+a.Version, 0)
			continue
		}
		t := p.Target
		if len(done) > 0 {
			t.PreCommands = nil
		} else if n := len(t.PreCommands); n > 0 {
			emit(a, "upgrading", fmt.Sprintf("the canary runs the %d pre-command(s) first", n), 0)
		}
		emit(a, "upgrading", fmt.Sprintf("%s → %s", a.Version, p.Target.Version), 0)
		upgraded, err := upgradeOne(ctx, c, a, t, p.StepTimeout, emit)
		if err == nil {
			done = append(done, a)
			continue
		}
		emit(a, "failed", err.Error(), 0)
		rerr := &Error{Alloc: a, Reason: err.Error()}
		var se *stageError
		if errors.As(err, &se) {
			rerr.Stage = se.stage
		}
		if upgraded {
			// Upgraded but unhealthy: it goes back with the others.
			done = append(done, a)
		} else {
			// The driver left it on its old version: drop its key.
			_ = c.SetTargets(context.WithoutCancel(ctx), map[string]*Target{a.ID: nil})
		}
		for i := len(done) - 1; i >= 0; i-- {
			b := done[i]
			emit(b, "reverting", fmt.Sprintf("%s → %s", p.Target.Version, b.Version), 0)
			if err := revertOne(context.WithoutCancel(ctx), c, b, p); err != nil {
				emit(b, "revert-failed", err.Error(), 0)
				rerr.Failures = append(rerr.Failures, b.Name+": "+err.Error())
				continue
			}
			emit(b, "reverted", "runs "+b.Version+" again", 0)
			rerr.Reverted = append(rerr.Reverted, b.ID)
		}
		return rerr
	}

	// Every allocation runs the target: make it the job's, so that
	// allocations placed later follow, and drop the per-allocation keys.
	all := p.Target
	all.PreCommands = nil
	set := map[string]*Target{AllKey: &all}
	for _, a := range allocs {
		set[a.ID] = nil
	}
	if err := c.SetTargets(ctx, set); err != nil {
		return fmt.Errorf("every allocation runs %s, but recording it for the job failed: %w", p.Target.Version, err)
	}
	emit(Alloc{}, "done", fmt.Sprintf("%d allocation(s) run %s", len(allocs), p.Target.Version), 0)
	return nil
}

// upgradeOne upgrades one allocation and waits for its checks. It reports
// whether the allocation runs the new version, even when it then failed.
func upgradeOne(ctx context.Context, c Cluster, a Alloc, t Target, timeout time.Duration, emit func(Alloc, string, string, time.Duration)) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	since, err := c.Mark(ctx, a.ID)
	if err != nil {
		return false, err
	}
	if err := c.SetTargets(ctx, map[string]*Target{a.ID: &t}); err != nil {
		return false, err
	}
	o, err := c.WaitOutcome(ctx, a.ID, t.Version, since)
	if err != nil {
		return false, err
	}
	if !o.OK() {
		return false, &stageError{stage: o.Stage, msg: fmt.Sprintf("%s: %s", o.Result, o.Message)}
	}
	emit(a, "upgraded", o.Message, o.Took)
	passed, err := c.WaitHealthy(ctx, a.ID)
	if err != nil {
		return true, fmt.Errorf("unhealthy after the upgrade: %w", err)
	}
	emit(a, "healthy", passed, time.Since(start))
	return true, nil
}

// stageError is an outcome that is not OK, with its stage.
type stageError struct{ stage, msg string }

func (e *stageError) Error() string { return e.msg }

func revertOne(ctx context.Context, c Cluster, a Alloc, p Plan) error {
	ctx, cancel := context.WithTimeout(ctx, p.StepTimeout)
	defer cancel()
	since, err := c.Mark(ctx, a.ID)
	if err != nil {
		return err
	}
	back := Target{Version: a.Version, Rollout: p.Target.Rollout + "-revert"}
	if err := c.SetTargets(ctx, map[string]*Target{a.ID: &back}); err != nil {
		return err
	}
	o, err := c.WaitOutcome(ctx, a.ID, a.Version, since)
	if err != nil {
		return err
	}
	if !o.OK() {
		return fmt.Errorf("%s: %s", o.Result, o.Message)
	}
	return nil
}
