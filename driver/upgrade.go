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
			err := d.finish(ctx, h, node, step)
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
	outcome, err := d.upgrade(ctx, h, node, step, t, rels, &st)
	d.recordHot(h, raw, current, t.Version, outcome, err)
	return false
}

// upgrade runs the checks and release_handler steps, and returns the
// outcome and, on failure, why.
func (d *Driver) upgrade(ctx context.Context, h *taskHandle, node *hot.Node, step *hotStep,
	t hotTarget, rels []hot.Release, st *taskState) (string, error) {
	refuse := func(err error) (string, error) {
		step.emit(hotRefused, "Hot upgrade %s → %s refused, node untouched: %v", step.from, t.Version, err)
		return hotRefused, err
	}
	installed := false
	for _, r := range rels {
		installed = installed || r.Version == t.Version
	}
	// The fetch tells its own story (source, progress, checksum); this
	// event says what is asked, and where from.
	if installed {
		step.emit(hotStarted, "Hot upgrade %s → %s started (key %s of %s); the version is on the node",
			step.from, t.Version, short(step.key), step.variable)
	} else {
		step.emit(hotStarted, "Hot upgrade %s → %s started (key %s of %s)",
			step.from, t.Version, short(step.key), step.variable)
	}

	// Check everything in Go before the node is touched.
	var apps []string
	unpacked := false
	if !installed {
		if t.Source == "" {
			return refuse(fmt.Errorf("version %s is not on the node and the target has no source", t.Version))
		}
		pkg, err := d.stageHot(ctx, h, st, t)
		if err != nil {
			return refuse(err)
		}
		// A package that does not join the release keeps no hold on the
		// cache: refused targets must not pile up past cache_max_mb.
		defer d.dropUnused(h, pkg.tree, pkg.sum)
		if err := pkg.CheckUpgrade(st.ReleaseName, step.from, st.ERTS); err != nil {
			return refuse(err)
		}
		unmerge, err := d.mergeHot(h, st, pkg)
		if err != nil {
			return refuse(fmt.Errorf("cannot add the release to the node's root: %w", err))
		}
		// Recorded before release_handler learns of it, so that a plugin
		// restart in between still knows the version's files, and a
		// restart of the task rebuilds them.
		h.rec.Hot = slices.DeleteFunc(h.rec.Hot, func(p hotPackage) bool { return p.Version == t.Version })
		h.rec.Hot = append(h.rec.Hot, hotPackage{Version: t.Version, Source: t.Source, SHA256: pkg.sum})
		h.rec.Trees = mapWith(h.rec.Trees, t.Version, pkg.Root)
		d.holdForAlloc(h.taskConfig, pkg.sum)
		h.addTree(t.Version, pkg.Root)
		d.saveHot(h)
		if _, err := node.Unpacked(ctx, pkg.RelFileIn(st.ReleaseRoot)); err != nil {
			unmerge()
			h.rec.Hot = slices.DeleteFunc(h.rec.Hot, func(p hotPackage) bool { return p.Version == t.Version })
			d.saveHot(h)
			return refuse(err)
		}
		unpacked = true
		apps = pkg.AppNames()
	} else {
		cur, err := inspect(st, step.from)
		if err != nil {
			return refuse(err)
		}
		if err := cur.CheckDowngrade(t.Version); err != nil {
			return refuse(err)
		}
		to, err := inspect(st, t.Version)
		if err != nil {
			return refuse(err)
		}
		apps = to.AppNames()
	}
	cleanup := func() {
		if unpacked {
			if err := node.Remove(context.WithoutCancel(ctx), t.Version); err != nil {
				h.logger.Warn("cannot remove the failed release", "version", t.Version, "error", err)
			}
			h.rec.Hot = slices.DeleteFunc(h.rec.Hot, func(p hotPackage) bool { return p.Version == t.Version })
			d.saveHot(h)
		}
	}
	if st.ReleaseKind == string(release.Mix) {
		if _, err := node.MergeRuntimeConfig(ctx, t.Version); err != nil {
			cleanup()
			return refuse(err)
		}
	}
	if _, err := node.CheckInstall(ctx, t.Version); err != nil {
		cleanup()
		return refuse(err)
	}
	running, err := node.RunningApps(ctx)
	if err != nil {
		cleanup()
		return refuse(err)
	}

	// Past this point release_handler changes the node.
	if _, err := node.Install(ctx, t.Version); err != nil {
		var ie *hot.InstallError
		if errors.As(err, &ie) && ie.Restarted {
			werr := node.WaitStarted(ctx)
			now, _, rerr := node.Releases(ctx)
			cleanup()
			if werr != nil || rerr != nil {
				step.emit(hotFailed, "Hot upgrade %s → %s failed in install_release: %s; the node did not come back: %v",
					step.from, t.Version, ie.Reason, errors.Join(werr, rerr))
				return hotFailed, err
			}
			step.emit(hotFailed, "Hot upgrade %s → %s failed in install_release: %s; release_handler restarted the "+
				"applications into %s, which the node (same pid %d) serves again", step.from, t.Version, ie.Reason, now, h.pidNow())
			return hotFailed, err
		}
		cleanup()
		step.emit(hotFailed, "Hot upgrade %s → %s failed: %v; the node still runs %s", step.from, t.Version, err, step.from)
		return hotFailed, err
	}
	if err := node.Healthy(ctx, t.Version, keep(running, apps)); err != nil {
		// Not yet permanent: go back while the old release is installed.
		_, berr := node.Install(ctx, step.from)
		cleanup()
		if berr != nil {
			step.emit(hotFailed, "Hot upgrade %s → %s unhealthy (%v), and going back failed: %v", step.from, t.Version, err, berr)
			return hotFailed, err
		}
		step.emit(hotFailed, "Hot upgrade %s → %s unhealthy (%v); went back to %s", step.from, t.Version, err, step.from)
		return hotFailed, err
	}
	if err := node.MakePermanent(ctx, t.Version); err != nil {
		step.emit(hotFailed, "Hot upgrade %s → %s is live but not permanent (a restart boots %s): %v",
			step.from, t.Version, step.from, err)
		h.setVersion(t.Version)
		return hotFailed, err
	}
	h.setVersion(t.Version)
	h.rec.Permanent = t.Version
	d.saveHot(h)
	step.emit(hotSucceeded, "Hot upgrade %s → %s done in %d ms: same pid %d, %s is permanent",
		step.from, t.Version, time.Since(step.start).Milliseconds(), h.pidNow(), t.Version)
	return hotSucceeded, nil
}

// finish makes an installed but not yet permanent version permanent, once
// it is healthy.
func (d *Driver) finish(ctx context.Context, h *taskHandle, node *hot.Node, step *hotStep) error {
	st := h.snapshot()
	pkg, err := inspect(&st, step.to)
	if err == nil {
		err = node.Healthy(ctx, step.to, pkg.AppNames())
	}
	if err == nil {
		err = node.MakePermanent(ctx, step.to)
	}
	if err == nil {
		h.rec.Permanent = step.to
		d.saveHot(h)
	}
	if err != nil {
		step.emit(hotFailed, "Hot upgrade to %s was installed but cannot be made permanent (a restart boots the old version): %v", step.to, err)
		return err
	}
	step.emit(hotSucceeded, "Hot upgrade to %s completed after an interruption: same pid %d, %s is permanent", step.to, h.pidNow(), step.to)
	return nil
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

// short shortens an allocation ID key the way Nomad shows them.
func short(key string) string {
	if len(key) == 36 {
		return key[:8]
	}
	return key
}

// keep returns the names in running that are also in apps.
func keep(running, apps []string) []string {
	var out []string
	for _, a := range running {
		if slices.Contains(apps, a) {
			out = append(out, a)
		}
	}
	return out
}
