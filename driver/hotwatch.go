package driver

import (
	"context"
	"fmt"
	"time"

	nomad "github.com/hashicorp/nomad/api"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/upgrade"
	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// A hot upgrade is asked for through a Nomad Variable, not through the
// jobspec: changing a task's config, env or meta replaces the allocation,
// which is exactly what a hot upgrade must not do. The driver follows the
// Variable with blocking queries through the task's own Task API socket
// and workload identity, so that:
//   - the target is declarative and outlives restarts of the node, the
//     plugin and the Nomad client;
//   - an upgrade starts within milliseconds of the write, where a template
//     re-render takes seconds;
//   - each allocation has a key of its own, so a rollout can go one
//     allocation at a time, and no ACL policy beyond the identity's
//     default is needed.

// hotTarget is one key's value in the hot-upgrade Variable.
type hotTarget = hotspec.Target

// hotVariable returns the Variable path a task follows.
func hotVariable(cfg *drivers.TaskConfig, hc HotUpgradeConfig) string {
	if hc.Variable != "" {
		return hc.Variable
	}
	return hotspec.Path(cfg.JobID, cfg.TaskGroupName, cfg.Name)
}

// checkSource refuses a target whose source the driver cannot fetch.
func checkSource(t hotspec.Target) error {
	if t.Source != "" && !hasAnyPrefix(t.Source, schemes) {
		return fmt.Errorf(`"source" %q: unsupported; use s3://, gs://, https://, http:// or file:///abs/path`, fetch.Redact(t.Source))
	}
	return nil
}

// watchTargets follows the task's hot-upgrade Variable until ctx ends and
// converges the node on its target. It runs one upgrade at a time.
func (d *Driver) watchTargets(ctx context.Context, h *taskHandle, hc HotUpgradeConfig) {
	cfg := h.taskConfig
	path := hotVariable(cfg, hc)
	token := readTaskToken(cfg)
	if token == "" {
		d.event(cfg, "Hot upgrades are off: the task has no workload identity token to read %s; "+
			"add identity { file = true } to the task", path)
		return
	}
	client, err := taskAPIClient(cfg, 0)
	if err != nil {
		d.event(cfg, "Hot upgrades are off: cannot reach the Task API: %v", err)
		return
	}
	logger := h.logger.With("variable", path)
	src := &variableSource{client: client, path: path, cfg: cfg}
	upgrade.Watch(ctx, src, cfg.AllocID, h.hotKick,
		func(key, raw string) bool { return d.converge(ctx, h, hc, key, raw) },
		func(err error) { logger.Warn("cannot read the hot-upgrade variable", "error", err) })
}

// variableSource reads the task's hot-upgrade Variable through its Task
// API socket, with its workload identity, read anew for each query.
type variableSource struct {
	client *nomad.Client
	path   string
	cfg    *drivers.TaskConfig
}

func (s *variableSource) Read(ctx context.Context, index uint64) (map[string]string, uint64, error) {
	q := (&nomad.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Minute, Namespace: s.cfg.Namespace,
		AuthToken: readTaskToken(s.cfg)}).WithContext(ctx)
	v, meta, err := s.client.Variables().Peek(s.path, q)
	if err != nil {
		return nil, 0, err
	}
	last := index
	if meta != nil {
		last = meta.LastIndex
	}
	var items map[string]string
	if v != nil {
		items = v.Items
	}
	return items, last, nil
}
