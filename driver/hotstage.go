package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
)

// staged is a hot-upgrade package in a tree the plugin owns.
type staged struct {
	*relup.Package
	tree string // the plugin's tree that holds it
	sum  string // the tarball's sha256, if known
}

// stageHot fetches the target through the node's cache into a tree the
// plugin owns, and inspects it there.
func (d *Driver) stageHot(ctx context.Context, h *taskHandle, st *taskState, t hotTarget) (*staged, error) {
	tree, sum, err := d.releaseTree(ctx, h.taskConfig, ReleaseConfig{Source: t.Source, SHA256: t.SHA256, hot: true}, h.logger)
	if err != nil {
		return nil, err
	}
	pkg, err := inspectStaged(tree, st.ReleaseName, t)
	if err != nil {
		d.dropUnused(h, tree, sum)
		return nil, err
	}
	return &staged{Package: pkg, tree: tree, sum: sum}, nil
}

func inspectStaged(tree, name string, t hotTarget) (*relup.Package, error) {
	src := fetch.Redact(t.Source)
	rel, err := release.Find(tree, name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if rel.Version != t.Version {
		return nil, fmt.Errorf("%s holds %s %s, not %s", src, rel.Name, rel.Version, t.Version)
	}
	return relup.Inspect(rel.Root, name)
}

// mergeHot copies the package's files that the node's release root does
// not have into it, through the task directory's root, as release_handler
// unpacks a release with keep_old_files. It returns a function that takes
// them back out.
func (d *Driver) mergeHot(h *taskHandle, st *taskState, pkg *staged) (func(), error) {
	owner, err := taskdir.Lookup(h.taskConfig.User)
	if err != nil {
		return nil, err
	}
	root, err := openReleaseRoot(h.taskConfig, st.ReleaseRoot)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	created, err := taskdir.Copy(pkg.Root, root, owner, true, reserved)
	unmerge := func() {
		r, err := openReleaseRoot(h.taskConfig, st.ReleaseRoot)
		if err != nil {
			h.logger.Warn("cannot take back a failed hot-upgrade package", "error", err)
			return
		}
		defer r.Close()
		for _, p := range created {
			_ = r.RemoveAll(p)
		}
	}
	if err != nil {
		unmerge()
		return nil, err
	}
	return unmerge, nil
}

// openReleaseRoot opens the task's copy of the release at root through
// its task directory.
func openReleaseRoot(cfg *drivers.TaskConfig, root string) (*os.Root, error) {
	rel, err := filepath.Rel(cfg.TaskDir().Dir, root)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("release root %s is not in the task directory", root)
	}
	td, err := taskdir.Open(cfg.TaskDir().Dir)
	if err != nil {
		return nil, err
	}
	defer td.Close()
	// The task writes local/ while its node runs: local/release may be a
	// link by now.
	return taskdir.OpenRoot(td.Root(), filepath.ToSlash(rel))
}

// dropUnused lets go of a staged package that did not join the task's
// release: its hold on the cache, or its private tree. Refused targets must
// not pile up past cache_max_mb.
func (d *Driver) dropUnused(h *taskHandle, tree, sum string) {
	for _, root := range h.rec.Trees {
		if root == tree || strings.HasPrefix(root, tree+string(filepath.Separator)) {
			return
		}
	}
	if sum == "" {
		_ = os.RemoveAll(tree)
		return
	}
	if sum == h.rec.SHA256 {
		return
	}
	if store, err := d.store(h.taskConfig); err == nil {
		store.Unhold(sum, h.taskConfig.ID)
	}
}

// inspect reads version vsn of the task's release from the plugin's own
// tree of it.
func inspect(st *taskState, vsn string) (*relup.Package, error) {
	root, err := st.tree(vsn)
	if err != nil {
		return nil, err
	}
	return relup.InspectVersion(root, st.ReleaseName, vsn)
}

// mapWith returns a copy of m with k set to v.
func mapWith(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}
