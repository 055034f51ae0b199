package driver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/hot"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// Outcomes of a hot upgrade, in the beam.hot annotation of its task events,
// which tools read from the allocation's task state.
const (
	hotStarted   = string(hotspec.Started)
	hotSucceeded = string(hotspec.Succeeded)
	hotRefused   = string(hotspec.Refused)
	hotFailed    = string(hotspec.Failed)
	hotCurrent   = string(hotspec.Current)
	hotInvalid   = string(hotspec.Invalid)
)

// hotStep is one upgrade's story, told in task events.
type hotStep struct {
	d        *Driver
	cfg      *drivers.TaskConfig
	key      string
	variable string
	from     string
	to       string
	start    time.Time
}

func (s *hotStep) emit(outcome, format string, args ...any) {
	r := hotspec.Report{Outcome: hotspec.Outcome(outcome), Key: s.key, Version: s.to, From: s.from, Took: time.Since(s.start)}
	s.d.eventWith(s.cfg, r.Details(), format, args...)
}

// converge brings the node to the target in raw, the value of key in the
// hot-upgrade Variable. Failures are reported as task events and recorded,
// so the same target is not tried again in a loop; they never stop the
// task.
//
// It returns true when the node could not be asked yet (it is booting) and
// the target should be tried again shortly.
func (d *Driver) converge(ctx context.Context, h *taskHandle, hc HotUpgradeConfig, key, raw string) (retry bool) {
	h.hotMu.Lock()
	defer h.hotMu.Unlock()
	cfg := h.taskConfig
	if slices.Contains(h.hot.Failed, raw) {
		return false
	}
	st := h.snapshot()
	step := &hotStep{d: d, cfg: cfg, key: key, variable: hotVariable(cfg, hc), from: st.ReleaseVersion, start: time.Now()}
	t, err := parseTarget(raw)
	if err != nil {
		step.emit(hotInvalid, "Hot upgrade target %s in %s is invalid: %v", key, step.variable, err)
		d.recordHot(h, raw, st.ReleaseVersion, "", hotInvalid, err)
		return false
	}
	step.to = t.Version
	refuse := func(err error) bool {
		step.emit(hotRefused, "Hot upgrade to %s refused, node untouched: %v", t.Version, err)
		d.recordHot(h, raw, st.ReleaseVersion, t.Version, hotRefused, err)
		return false
	}

	ctx, cancel := context.WithTimeout(ctx, hc.timeout())
	defer cancel()
	ctl, err := d.controlClient(h, &st)
	if err != nil {
		return refuse(err)
	}
	if st.ReleaseKind == string(release.Shipment) {
		return refuse(errors.New("a Gleam erlang-shipment has no release_handler release (no .rel, no relup); deploy it as a full release"))
	}
	node := &hot.Node{Eval: ctl, Root: st.ReleaseRoot, CallTimeout: hc.timeout()}
	current, rels, err := node.Releases(ctx)
	var ce *hot.CallError
	if errors.As(err, &ce) {
		return refuse(fmt.Errorf("release_handler does not answer (%v); the release must include sasl", err))
	}
	if err != nil {
		// The node may still be booting: try again shortly, without
		// recording a failure.
		h.logger.Debug("hot upgrade deferred: the node does not answer yet", "version", t.Version, "error", err)
		return true
	}
	step.from = current
	if current == t.Version {
		if st.ReleaseVersion != current {
			h.setVersion(current)
		}
		if status(rels, current) != "permanent" {
			// Installed, but the upgrade was cut short (the plugin
			// restarted) before it was made permanent: finish it.
			err := d.upgrader(h, &st, node, step).Finish(ctx, current)
			d.recordHot(h, raw, current, current, outcomeOf(err), err)
			return false
		}
		if h.rec.Permanent != current && st.Trees[current] != "" {
			// Made permanent just before a plugin restart that kept the
			// record from saying so: a restart of the task boots it.
			h.rec.Permanent = current
		}
		d.recordHot(h, raw, current, current, hotCurrent, nil)
		return false
	}
	outcome, err := d.upgrader(h, &st, node, step).Run(ctx, t, current, rels)
	d.recordHot(h, raw, current, t.Version, string(outcome), err)
	return false
}

func outcomeOf(err error) string {
	if err != nil {
		return hotFailed
	}
	return hotSucceeded
}

// status returns release_handler's status of version vsn.
func status(rels []hot.Release, vsn string) string {
	for _, r := range rels {
		if r.Version == vsn {
			return r.Status
		}
	}
	return ""
}
