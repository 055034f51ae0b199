// Package upgrade brings a running node to the release version that its
// hot-upgrade target names: the checks before the node is touched,
// release_handler's steps, the health gate, and the undo that a failure
// calls for. It reports each step as a hotspec.Report.
//
// It knows the node, the task and the staged package only through the
// small interfaces below, which the driver implements over its handle and
// which the tests fake, so that every branch is tested without a node.
package upgrade

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/hot"
	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// undoTimeout bounds each step that takes a failed upgrade back: it runs
// even when the upgrade's own deadline has passed.
const undoTimeout = time.Minute

// Node is release_handler on the live node (hot.Node).
type Node interface {
	Releases(ctx context.Context) (current string, rels []hot.Release, err error)
	Unpacked(ctx context.Context, relFile string) (string, error)
	MergeRuntimeConfig(ctx context.Context, version string) (bool, error)
	CheckInstall(ctx context.Context, version string) (string, error)
	RunningApps(ctx context.Context) ([]string, error)
	Install(ctx context.Context, version string) (string, error)
	WaitStarted(ctx context.Context) error
	Healthy(ctx context.Context, version string, apps []string) error
	MakePermanent(ctx context.Context, version string) error
	Remove(ctx context.Context, version string) error
	OldCode(ctx context.Context) ([]string, error)
}

// Package is one version of the release, as the checks read it
// (relup.Package).
type Package interface {
	CheckUpgrade(runningName, running, erts string) error
	CheckDowngrade(to string) error
	AppNames() []string
	RelFileIn(root string) string
}

// Staged is a fetched package in a tree the plugin owns, not yet part of
// the task's release.
type Staged interface {
	Package
	// Merge adds its files to the node's release root, and returns how
	// to take them back out.
	Merge() (undo func(), err error)
	// Join records it in the task's record, before release_handler
	// learns of it, so that a plugin restart or a task restart in between
	// still finds its files; Leave takes it out again.
	Join() error
	Leave()
	// Drop lets go of it (its cache hold, or its private tree) unless it
	// joined the release. It is called when the upgrade ends.
	Drop()
}

// Task is what an upgrade needs of the task the node runs in.
type Task interface {
	// Stage fetches the target's package into a tree the plugin owns.
	Stage(ctx context.Context, t hotspec.Target) (Staged, error)
	// Inspect reads a version already on the node, from the plugin's
	// own tree of it.
	Inspect(version string) (Package, error)
	// SetVersion records the version the node runs; SetPermanent, the
	// one a restart boots.
	SetVersion(version string)
	SetPermanent(version string)
	// Adopt records that the node runs version permanently, when the
	// plugin has its files: a restart of the task then boots it.
	Adopt(version string)
	// Pid is the node's OS pid, which the events show unchanged.
	Pid() int
	// PreCommand runs one of a target's pre-commands in the task with the
	// code of version, whose files are in the node's release root, and
	// returns its exit code and the last lines of its output.
	PreCommand(ctx context.Context, version string, argv []string) (code int, tail string, err error)
}

// Release describes the task's release.
type Release struct {
	Name string
	ERTS string
	// Root is the node's release root (the task's copy).
	Root string
	// Mix releases merge their runtime configuration before install.
	Mix bool
}

// Upgrade is one upgrade of one node.
type Upgrade struct {
	Node    Node
	Task    Task
	Release Release
	// Report receives each step's outcome, with a message for people.
	Report func(r hotspec.Report, message string)
	// Key and Variable say where the target came from, for the events.
	Key, Variable string
	// Warn, if set, hears of undo steps that failed.
	Warn func(msg string, args ...any)
	// Check, if set, vets a target beyond its syntax (that the driver can
	// fetch its source, say); an error makes the target invalid.
	Check func(hotspec.Target) error
	// Refuse, if set, is why no target can be taken at all (no channel
	// into the node, a release without release_handler).
	Refuse error

	from, to string
	start    time.Time
	stage    string // hotspec.DetailStage of the outcome
}

func (u *Upgrade) emit(o hotspec.Outcome, format string, args ...any) {
	u.Report(hotspec.Report{Outcome: o, Key: u.Key, Version: u.to, From: u.from, Took: time.Since(u.start), Stage: u.stage},
		fmt.Sprintf(format, args...))
}

// Run upgrades (or downgrades) the node from the version it runs now,
// current, to t, given release_handler's releases. It returns the outcome
// and, unless it succeeded, why.
func (u *Upgrade) Run(ctx context.Context, t hotspec.Target, current string, rels []hot.Release) (o hotspec.Outcome, err error) {
	u.from, u.to, u.start = current, t.Version, time.Now()
	refuse := func(err error) (hotspec.Outcome, error) {
		u.emit(hotspec.Refused, "Hot upgrade %s → %s refused, node untouched: %v", u.from, t.Version, err)
		return hotspec.Refused, err
	}
	// undo holds what to take back if the upgrade fails, newest last.
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()

	installed := slices.ContainsFunc(rels, func(r hot.Release) bool { return r.Version == t.Version })
	// The fetch tells its own story (source, progress, checksum); this
	// event says what is asked, and where from.
	onNode := ""
	if installed {
		onNode = "; the version is on the node"
	}
	u.emit(hotspec.Started, "Hot upgrade %s → %s started (key %s of %s)%s", u.from, t.Version, short(u.Key), u.Variable, onNode)

	// Check everything in Go before the node is touched.
	var apps []string
	if !installed {
		if t.Source == "" {
			return refuse(fmt.Errorf("version %s is not on the node and the target has no source", t.Version))
		}
		pkg, err := u.Task.Stage(ctx, t)
		if err != nil {
			return refuse(err)
		}
		defer pkg.Drop()
		if err := pkg.CheckUpgrade(u.Release.Name, u.from, u.Release.ERTS); err != nil {
			return refuse(err)
		}
		unmerge, err := pkg.Merge()
		if err != nil {
			return refuse(fmt.Errorf("cannot add the release to the node's root: %w", err))
		}
		undo = append(undo, unmerge)
		if err := pkg.Join(); err != nil {
			return refuse(fmt.Errorf("cannot record the release: %w", err))
		}
		undo = append(undo, pkg.Leave)
		if err := u.preCommands(ctx, t); err != nil {
			u.stage = hotspec.StagePreCommand
			return refuse(err)
		}
		if _, err := u.Node.Unpacked(ctx, pkg.RelFileIn(u.Release.Root)); err != nil {
			return refuse(err)
		}
		// From here release_handler owns the files: removing the
		// release takes them out, not the unmerge, and the record keeps
		// the version for as long as release_handler lists it.
		undo = []func(){func() {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
			defer cancel()
			if err := u.Node.Remove(rctx, t.Version); err != nil {
				if u.Warn != nil {
					u.Warn("cannot remove the failed release; it stays recorded", "version", t.Version, "error", err)
				}
				return
			}
			pkg.Leave()
		}}
		apps = pkg.AppNames()
	} else {
		// A version already on the node, as release_handler looks it up:
		// an up-from entry for the running version in the target's relup
		// first (a target unpacked before a plugin restart, or one the
		// node went back from), else a down-to entry in the running
		// release's relup.
		to, err := u.Task.Inspect(t.Version)
		if err != nil {
			return refuse(err)
		}
		if to.CheckUpgrade(u.Release.Name, u.from, u.Release.ERTS) != nil {
			cur, err := u.Task.Inspect(u.from)
			if err != nil {
				return refuse(err)
			}
			if err := cur.CheckDowngrade(t.Version); err != nil {
				return refuse(err)
			}
		}
		apps = to.AppNames()
	}
	if u.Release.Mix {
		if _, err := u.Node.MergeRuntimeConfig(ctx, t.Version); err != nil {
			return refuse(err)
		}
	}
	if _, err := u.Node.CheckInstall(ctx, t.Version); err != nil {
		return refuse(err)
	}
	running, err := u.Node.RunningApps(ctx)
	if err != nil {
		return refuse(err)
	}

	// Past this point release_handler changes the node.
	if _, err := u.Node.Install(ctx, t.Version); err != nil {
		var ie *hot.InstallError
		if !errors.As(err, &ie) || !ie.Restarted {
			u.emit(hotspec.Failed, "Hot upgrade %s → %s failed: %v; the node still runs %s", u.from, t.Version, err, u.from)
			return hotspec.Failed, err
		}
		werr := u.Node.WaitStarted(ctx)
		now, _, rerr := u.Node.Releases(ctx)
		if werr != nil || rerr != nil {
			u.emit(hotspec.Failed, "Hot upgrade %s → %s failed in install_release: %s; the node did not come back: %v",
				u.from, t.Version, ie.Reason, errors.Join(werr, rerr))
			return hotspec.Failed, err
		}
		u.emit(hotspec.Failed, "Hot upgrade %s → %s failed in install_release: %s; release_handler restarted the "+
			"applications into %s, which the node (same pid %d) serves again", u.from, t.Version, ie.Reason, now, u.Task.Pid())
		return hotspec.Failed, err
	}
	if err := u.Node.Healthy(ctx, t.Version, keep(running, apps)); err != nil {
		// Not yet permanent: go back while the old release is installed,
		// with time of its own, whatever the upgrade's deadline left.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
		_, berr := u.Node.Install(bctx, u.from)
		cancel()
		if berr != nil {
			u.emit(hotspec.Failed, "Hot upgrade %s → %s unhealthy (%v), and going back failed: %v", u.from, t.Version, err, berr)
			return hotspec.Failed, err
		}
		u.emit(hotspec.Failed, "Hot upgrade %s → %s unhealthy (%v); went back to %s", u.from, t.Version, err, u.from)
		return hotspec.Failed, err
	}
	undo = nil // installed and healthy: nothing is taken back now
	u.Task.SetVersion(t.Version)
	if err := u.Node.MakePermanent(ctx, t.Version); err != nil {
		u.emit(hotspec.Failed, "Hot upgrade %s → %s is live but not permanent (a restart boots %s): %v",
			u.from, t.Version, u.from, err)
		return hotspec.Failed, err
	}
	u.Task.SetPermanent(t.Version)
	u.emit(hotspec.Succeeded, "Hot upgrade %s → %s done in %d ms: same pid %d, %s is permanent%s",
		u.from, t.Version, time.Since(u.start).Milliseconds(), u.Task.Pid(), t.Version, u.oldCode(ctx))
	return hotspec.Succeeded, nil
}

// Finish makes version, installed but not yet permanent (a plugin restart
// cut its upgrade short), permanent once it is healthy.
func (u *Upgrade) Finish(ctx context.Context, version string) error {
	u.from, u.to, u.start = version, version, time.Now()
	pkg, err := u.Task.Inspect(version)
	if err == nil {
		err = u.Node.Healthy(ctx, version, pkg.AppNames())
	}
	if err == nil {
		err = u.Node.MakePermanent(ctx, version)
	}
	if err != nil {
		u.emit(hotspec.Failed, "Hot upgrade to %s was installed but cannot be made permanent (a restart boots the old version): %v", version, err)
		return err
	}
	u.Task.SetPermanent(version)
	u.emit(hotspec.Succeeded, "Hot upgrade to %s completed after an interruption: same pid %d, %s is permanent", version, u.Task.Pid(), version)
	return nil
}

// preCommands runs the target's pre-commands, in order, with the new
// version's code; the first that fails stops the upgrade before
// release_handler is asked.
func (u *Upgrade) preCommands(ctx context.Context, t hotspec.Target) error {
	if len(t.PreCommands) > 0 {
		// One event for all: Nomad keeps only the task's last ten.
		u.emit(hotspec.Started, "Hot upgrade %s → %s: running %d pre-command(s) with %s's code", u.from, t.Version,
			len(t.PreCommands), t.Version)
	}
	for i, argv := range t.PreCommands {
		desc := fmt.Sprintf("pre-command %d/%d (%s)", i+1, len(t.PreCommands), clip(strings.Join(argv, " "), 80))
		start := time.Now()
		code, tail, err := u.Task.PreCommand(ctx, t.Version, argv)
		if err != nil {
			return fmt.Errorf("%s could not run: %w", desc, err)
		}
		if code != 0 {
			return fmt.Errorf("%s failed with exit code %d after %s; nothing was installed. Last output:\n%s",
				desc, code, time.Since(start).Round(10*time.Millisecond), tail)
		}
	}
	return nil
}

// clip shortens s to n bytes for a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// oldCode says which modules' old code processes still run after an
// upgrade, as a clause for its event, or nothing.
func (u *Upgrade) oldCode(ctx context.Context) string {
	mods, err := u.Node.OldCode(ctx)
	if err != nil || len(mods) == 0 {
		return ""
	}
	if len(mods) > 5 {
		mods = append(mods[:5:5], fmt.Sprintf("%d more", len(mods)-5))
	}
	return fmt.Sprintf("; the old code of %s is still loaded (soft_purge kept it, as processes ran it), so the next "+
		"upgrade that changes those modules is refused while processes still run it", strings.Join(mods, ", "))
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
