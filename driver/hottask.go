package driver

import (
	"context"
	"slices"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/launch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/upgrade"
	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// upgrader returns an upgrade of h's node to the target under key in the
// Variable; the caller gives it the node.
func (d *Driver) upgrader(h *taskHandle, st *taskState, key, variable string) *upgrade.Upgrade {
	return &upgrade.Upgrade{
		Task: &hotTask{d: d, h: h, st: st},
		Release: upgrade.Release{Name: st.ReleaseName, ERTS: st.ERTS, Root: st.ReleaseRoot,
			Mix: st.ReleaseKind == string(release.Mix)},
		Report: func(r hotspec.Report, msg string) {
			d.eventWith(h.taskConfig, r.Details(), "%s", msg)
		},
		Key:      key,
		Variable: variable,
		Warn:     h.logger.Warn,
	}
}

// hotTask is the task as an upgrade sees it: the handle, its record and
// the plugin's trees of its release.
type hotTask struct {
	d  *Driver
	h  *taskHandle
	st *taskState // as the upgrade began
}

func (t *hotTask) Stage(ctx context.Context, target hotspec.Target) (upgrade.Staged, error) {
	pkg, err := t.d.stageHot(ctx, t.h, t.st, target)
	if err != nil {
		return nil, err
	}
	return &stagedPkg{staged: pkg, t: t, target: target}, nil
}

func (t *hotTask) Inspect(version string) (upgrade.Package, error) {
	p, err := inspect(t.st, version)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (t *hotTask) SetVersion(version string) { t.h.setVersion(version) }

func (t *hotTask) SetPermanent(version string) {
	t.h.rec.Permanent = version
	t.d.saveHot(t.h)
}

func (t *hotTask) Adopt(version string) {
	if t.h.rec.Permanent != version && t.st.Trees[version] != "" {
		t.h.rec.Permanent = version
	}
}

func (t *hotTask) Pid() int { return t.h.pidNow() }

// PreCommand runs a hot target's pre-command in the task, as `nomad alloc
// exec` would run it (the task's user, environment, isolation, cgroup and
// network namespace), with the code of version: mix's script picks it by
// RELEASE_VSN; for relx, launch.PreCommand boots version's own files. The
// node keeps running beside it.
func (t *hotTask) PreCommand(ctx context.Context, version string, argv []string) (int, string, error) {
	st := t.st
	rel := &release.Release{Root: st.ReleaseRoot, Name: st.ReleaseName, Version: version,
		Kind: release.Kind(st.ReleaseKind), ERTS: st.ERTS}
	// The plugin's own tree of version, never the task's copy, says what
	// the release holds: its applications, and whether it bundles ERTS.
	snap := t.h.snapshot()
	pkg, err := inspect(&snap, version)
	if err != nil {
		return 0, "", err
	}
	// The node's root has the ERTS of the package or of the base release.
	for _, v := range []string{version, st.ReleaseVersion} {
		if tree, err := snap.tree(v); err == nil {
			if fi, err := release.StatIn(tree, "erts-"+st.ERTS); release.ValidName(st.ERTS) && err == nil && fi.IsDir() {
				rel.BundlesERTS = true
			}
		}
	}
	path, args, err := launch.PreCommand(rel, argv, libNames(pkg))
	if err != nil {
		return 0, "", err
	}
	box, err := t.d.execSpec(t.h, append([]string{path}, args...))
	if err != nil {
		return 0, "", err
	}
	if rel.Kind == release.Mix {
		box.Env = append(box.Env, "RELEASE_VSN="+version)
	}
	// It ends with its program, whatever that left running.
	box.Relay = true
	out, errb, code, err := runInside(ctx, t.h.exec, box, nil)
	if err != nil {
		return 0, "", err
	}
	tail := &tailWriter{max: 4096}
	_, _ = tail.Write(out)
	_, _ = tail.Write(errb)
	return code, tail.lastLines(6), nil
}

// libNames returns the lib directories of a release's applications, as
// NAME-VSN.
func libNames(p *relup.Package) []string {
	out := []string{}
	for _, a := range p.Apps {
		out = append(out, a.Name+"-"+a.Version)
	}
	return out
}

// stagedPkg is a fetched package that may join the task's release.
type stagedPkg struct {
	*staged
	t      *hotTask
	target hotspec.Target
}

func (p *stagedPkg) Merge() (func(), error) { return p.t.d.mergeHot(p.t.h, p.t.st, p.staged) }

// Join records the package in the task's record, which a restart of the
// plugin or of the task rebuilds the release from.
func (p *stagedPkg) Join() error {
	h, v := p.t.h, p.target.Version
	h.rec.Hot = slices.DeleteFunc(h.rec.Hot, func(x hotPackage) bool { return x.Version == v })
	h.rec.Hot = append(h.rec.Hot, hotPackage{Version: v, Source: p.target.Source, SHA256: p.sum})
	h.rec.Trees = mapWith(h.rec.Trees, v, p.Root)
	p.t.d.holdForAlloc(h.taskConfig, p.sum)
	h.addTree(v, p.Root)
	p.t.d.saveHot(h)
	return nil
}

// Leave takes the package back out of the task's record: its version,
// its tree, and its hold on the cache.
func (p *stagedPkg) Leave() {
	h, v := p.t.h, p.target.Version
	h.rec.Hot = slices.DeleteFunc(h.rec.Hot, func(x hotPackage) bool { return x.Version == v })
	if h.rec.Trees[v] == p.Root {
		delete(h.rec.Trees, v)
		h.dropTree(v)
	}
	p.t.d.saveHot(h)
	p.t.d.dropUnused(h, p.tree, p.sum)
	if p.sum != "" && p.sum != h.rec.SHA256 {
		if store, err := p.t.d.store(h.taskConfig); err == nil {
			store.Unhold(p.sum, holder(h.taskConfig))
		}
	}
}

func (p *stagedPkg) Drop() { p.t.d.dropUnused(p.t.h, p.tree, p.sum) }
