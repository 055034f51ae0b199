package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/cache"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/launch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/unpack"
)

// releaseTree returns a directory that the plugin owns and the task cannot
// reach, holding the release of rc unpacked, checked and with its scripts'
// cookie arguments removed: the node's cached tree for a release with a
// sha256, built once per node and namespace, or a private tree of the
// task's for one without. The driver reads the release only from there,
// and gives each task its own copy.
func (d *Driver) releaseTree(ctx context.Context, cfg *drivers.TaskConfig, rc ReleaseConfig, logger hclog.Logger) (tree, sum string, err error) {
	tb, err := d.obtain(ctx, cfg, rc, logger)
	if err != nil {
		return "", "", err
	}
	defer tb.done()
	src := fetch.Redact(rc.Source)
	if tb.sha256 == "" {
		d.event(cfg, "Unpacking release (%s, %s)", humanBytes(tb.size), tb.note)
		// A new directory each time: the same source may hold other
		// content now, and a tree that a version was read from stays.
		if err := os.MkdirAll(d.privateDir(cfg), 0o700); err != nil {
			return "", "", d.fail(cfg, "cannot create %s: %v", d.privateDir(cfg), err)
		}
		dir, err := os.MkdirTemp(d.privateDir(cfg), "tree-")
		if err != nil {
			return "", "", d.fail(cfg, "cannot create a directory in %s: %v", d.privateDir(cfg), err)
		}
		if err := d.buildTree(tb.path, dir); err != nil {
			_ = os.RemoveAll(dir)
			return "", "", d.fail(cfg, "Release %s refused: %v", src, err)
		}
		return dir, "", nil
	}
	store, err := d.store(cfg)
	if err != nil {
		return "", "", d.fail(cfg, "%v", err)
	}
	if tree, ok := store.HasTree(tb.sha256); ok {
		d.event(cfg, "Unpacking release (%s, %s; unpacked on this node before)", humanBytes(tb.size), tb.note)
		return tree, tb.sha256, nil
	}
	d.event(cfg, "Unpacking release (%s, %s)", humanBytes(tb.size), tb.note)
	tree, err = store.Tree(tb.sha256, func(dir string) error { return d.buildTree(tb.path, dir) })
	if err != nil {
		return "", "", d.fail(cfg, "Release %s refused: %v", src, err)
	}
	return tree, tb.sha256, nil
}

// buildTree unpacks the tarball into dir and removes the cookie arguments
// from the start scripts of every release in it, or says why it cannot.
func (d *Driver) buildTree(tarball, dir string) error {
	cfg, _ := d.cfg()
	lim := unpack.Limits{MaxBytes: int64(cfg.MaxUnpackedMB) << 20}
	if err := unpack.File(tarball, dir, lim); err != nil {
		return unpackError(err)
	}
	rels, err := release.Scan(dir)
	if err != nil {
		return nil // release.Find says what is wrong, for the task's event
	}
	for _, r := range rels {
		if err := launch.Scrub(r); err != nil {
			return err
		}
	}
	return nil
}

// store returns the node's release cache, the part of it for the task's
// namespace: a release is shared only within one.
func (d *Driver) store(cfg *drivers.TaskConfig) (*cache.Cache, error) {
	c, err := d.releases()
	if err != nil {
		return nil, err
	}
	ns := cfg.Namespace
	if ns == "" {
		ns = "default"
	}
	return c.Namespace(ns)
}

// copyRelease gives the task its own copy of the release in local/release,
// made anew from the plugin's trees: the base release in tree, then every
// hot-upgrade package that rec lists, with the permanent version set to
// boot. Files go to owner. It returns the release the node starts, with its
// root in the task's copy, and records in rec where each version's
// plugin-owned tree is.
func (d *Driver) copyRelease(ctx context.Context, cfg *drivers.TaskConfig, td *taskdir.Dir, tree string,
	rel *release.Release, rec *record, owner taskdir.Owner, hot bool, logger hclog.Logger) (*release.Release, error) {
	dst, err := td.Fresh("local/release", 0o755)
	if err != nil {
		return nil, d.fail(cfg, "cannot prepare local/release: %v", err)
	}
	defer dst.Close()
	if _, err := taskdir.Copy(tree, dst, owner, false, reserved); err != nil {
		return nil, d.fail(cfg, "cannot copy the release into local/release: %v", err)
	}
	sub, err := filepath.Rel(tree, rel.Root)
	if err != nil {
		return nil, d.fail(cfg, "%v", err)
	}
	root, err := dst.OpenRoot(sub)
	if err != nil {
		return nil, d.fail(cfg, "cannot open the release in local/release: %v", err)
	}
	defer root.Close()
	// release_handler, in the node, adds files to the release root.
	if err := taskdir.ChownDir(root, ".", 0o755, owner); err != nil {
		return nil, d.fail(cfg, "cannot give the release to the task's user: %v", err)
	}
	running := *rel
	running.Root = filepath.Join(cfg.TaskDir().LocalDir, "release", sub)

	versions := []string{rec.Base}
	for _, hp := range rec.Hot {
		t, sum, err := d.releaseTree(ctx, cfg, ReleaseConfig{Source: hp.Source, SHA256: hp.SHA256, hot: true}, logger)
		if err != nil {
			return nil, err
		}
		d.holdForAlloc(cfg, sum)
		hr, err := release.Find(t, rel.Name)
		if err == nil && hr.Version != hp.Version {
			err = fmt.Errorf("it holds version %s", hr.Version)
		}
		if err != nil {
			return nil, d.fail(cfg, "Cannot restore hot-upgrade package %s %s: %v", rel.Name, hp.Version, err)
		}
		if _, err := taskdir.Copy(hr.Root, root, owner, true, reserved); err != nil {
			return nil, d.fail(cfg, "Cannot restore hot-upgrade package %s %s: %v", rel.Name, hp.Version, err)
		}
		rec.Trees[hp.Version] = hr.Root
		versions = append(versions, hp.Version)
	}
	if !hot || rel.Kind == release.Shipment {
		return &running, nil
	}
	// release_handler needs releases/RELEASES. relx ships one, mix does
	// not; after hot upgrades it lists them all, as release_handler had.
	if len(rec.Hot) == 0 {
		if _, err := os.Stat(filepath.Join(rel.Root, "releases", "RELEASES")); err == nil {
			return &running, nil
		}
	}
	permanent := rec.Permanent
	if permanent == "" || rec.Trees[permanent] == "" {
		permanent = rec.Base
	}
	var pkgs []*relup.Package
	for _, v := range versions {
		p, err := relup.InspectVersion(rec.Trees[v], rel.Name, v)
		if err != nil {
			return nil, d.fail(cfg, "Hot upgrades need releases/RELEASES, which cannot be written: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if err := taskdir.WriteFile(root, "releases/RELEASES", relup.RELEASES(pkgs, running.Root, permanent), 0o644, owner); err != nil {
		return nil, d.fail(cfg, "Hot upgrades need releases/RELEASES, which cannot be written: %v", err)
	}
	if permanent != rel.Version {
		data := []byte(rel.ERTS + " " + permanent + "\n")
		if err := taskdir.WriteFile(root, "releases/start_erl.data", data, 0o644, owner); err != nil {
			return nil, d.fail(cfg, "cannot set the permanent version %s: %v", permanent, err)
		}
		running.Version = permanent
	}
	return &running, nil
}

// unpackError says which setting an archive over the size limit ran into.
func unpackError(err error) error {
	var ue *unpack.Error
	if errors.As(err, &ue) && strings.Contains(ue.Reason, "unpacked size would exceed") {
		return fmt.Errorf("%w (the plugin's max_unpacked_mb)", err)
	}
	return err
}

// reserved reports whether a name in a cached tree is one of the cache's
// own files, which a task's copy leaves out.
func reserved(rel string) bool {
	return strings.HasPrefix(filepath.Base(rel), unpack.ReservedPrefix)
}

// holdForAlloc holds a cached release for the task's allocation, not just
// this run of the task: a restart rebuilds the release from the cache,
// and the source may be gone by then (a presigned URL expires).
func (d *Driver) holdForAlloc(cfg *drivers.TaskConfig, sum string) {
	if sum == "" {
		return
	}
	if store, err := d.store(cfg); err == nil {
		_ = store.Hold(sum, holder(cfg))
	}
}

// prunePrivate removes the task's private trees that no version in trees
// is read from.
func (d *Driver) prunePrivate(cfg *drivers.TaskConfig, trees map[string]string) {
	dirs, _ := filepath.Glob(filepath.Join(d.privateDir(cfg), "tree-*"))
	for _, dir := range dirs {
		used := false
		for _, root := range trees {
			used = used || root == dir || strings.HasPrefix(root, dir+string(filepath.Separator))
		}
		if !used {
			_ = os.RemoveAll(dir)
		}
	}
}
