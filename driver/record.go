package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// record is what the plugin keeps of a task in its own data_dir, which the
// task cannot write: the release the allocation started from, the
// hot-upgrade packages that joined it since, and the hot-upgrade history.
//
// A restart of the task within its allocation rebuilds the release tree
// from these, from the node's verified copies, rather than trusting the
// tree in local/, which the task's user can change at will.
type record struct {
	// AllocDir is the allocation's directory; once it is gone, so is the
	// allocation, and the record is removed.
	AllocDir string `json:"alloc_dir"`
	// Source and SHA256 are the task config's release.
	Source string `json:"source"`
	SHA256 string `json:"sha256,omitempty"`
	// Base is the version the allocation started from.
	Base string `json:"base"`
	// Permanent is the version release_handler made permanent, which a
	// restart boots; empty means Base.
	Permanent string `json:"permanent,omitempty"`
	// Hot lists the hot-upgrade packages that joined the release, in
	// order.
	Hot []hotPackage `json:"hot,omitempty"`
	// Trees maps each version on the node to the root of its release in
	// a plugin-owned tree: what the driver reads, never the task's copy.
	Trees map[string]string `json:"trees,omitempty"`
	// HotLog is the hot-upgrade history.
	HotLog hotRecord `json:"hot_log"`
	// Node is the node's full name, which no other task on the client may
	// take while the allocation lives.
	Node string `json:"node,omitempty"`
}

// hotPackage is one hot-upgrade package that joined a task's release.
type hotPackage struct {
	Version string `json:"version"`
	Source  string `json:"source"`
	SHA256  string `json:"sha256,omitempty"`
}

// recordDir is where the plugin keeps its records of tasks.
func (d *Driver) recordDir() string {
	cfg, _ := d.cfg()
	return filepath.Join(cfg.DataDir, "tasks")
}

// recordPath is a task's record file. A task is known by its allocation
// and name: its ID changes with each restart.
func (d *Driver) recordPath(cfg *drivers.TaskConfig) string {
	return filepath.Join(d.recordDir(), cfg.AllocID+"."+url.PathEscape(cfg.Name)+".json")
}

// privateDir is a plugin-owned directory for one task's files, such as
// the tree of a release that has no sha256 to share it by.
func (d *Driver) privateDir(cfg *drivers.TaskConfig) string {
	return strings.TrimSuffix(d.recordPath(cfg), ".json") + ".d"
}

// loadRecord returns the task's record, or nil when there is none. A
// damaged record (a crash while it was written, say) counts as none: the
// task then starts afresh, from the release in its config.
func (d *Driver) loadRecord(cfg *drivers.TaskConfig) *record {
	r, err := readRecord(d.recordPath(cfg))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.logger.Warn("ignoring a damaged task record", "alloc_id", cfg.AllocID, "task_name", cfg.Name, "error", err)
	}
	return r
}

func readRecord(path string) (*record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("task record %s is damaged: %w", path, err)
	}
	return &r, nil
}

// saveRecord writes the task's record atomically and durably.
func (d *Driver) saveRecord(cfg *drivers.TaskConfig, r *record) error {
	if err := os.MkdirAll(d.recordDir(), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(d.recordDir(), ".record-*")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), d.recordPath(cfg)); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// records returns the records of live allocations other than the task's,
// and removes those of allocations whose directory is gone, with their
// private files and their holds on the release cache.
func (d *Driver) records(cfg *drivers.TaskConfig) []*record {
	var live []*record
	own := d.recordPath(cfg)
	files, _ := filepath.Glob(filepath.Join(d.recordDir(), "*.json"))
	for _, f := range files {
		r, err := readRecord(f)
		if err != nil || r.AllocDir == "" {
			continue
		}
		if _, err := os.Stat(r.AllocDir); errors.Is(err, fs.ErrNotExist) {
			_ = os.RemoveAll(strings.TrimSuffix(f, ".json") + ".d")
			_ = os.Remove(f)
			d.releaseCache(strings.TrimSuffix(filepath.Base(f), ".json"))
			continue
		}
		if f != own {
			live = append(live, r)
		}
	}
	return live
}

// claimed reports whether another live allocation on this client runs, or
// ran and may run again, a node of the short name of node: a restart
// within an allocation, or a plugin restart, leaves a moment in which the
// port mapper does not know the name, and no other task may take it then.
func (d *Driver) claimed(cfg *drivers.TaskConfig, node string) bool {
	others := d.records(cfg) // sweeps, whatever node is
	if node == "" {
		return false
	}
	for _, r := range others {
		if r.Node != "" && shortName(r.Node) == shortName(node) {
			return true
		}
	}
	return false
}

// holder names the task's hold on the release cache for as long as its
// allocation lives: its restarts rebuild the release from there.
func holder(cfg *drivers.TaskConfig) string {
	return cfg.AllocID + "." + url.PathEscape(cfg.Name)
}
