package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/nomad/drivers/shared/executor"
	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// StartTask fetches and unpacks the release, then starts the node under a
// new executor.
func (d *Driver) StartTask(cfg *drivers.TaskConfig) (*drivers.TaskHandle, *drivers.DriverNetwork, error) {
	if _, ok := d.tasks.Get(cfg.ID); ok {
		return nil, nil, fmt.Errorf("task with ID %q already started", cfg.ID)
	}
	pcfg, client := d.cfg()
	var tc TaskConfig
	if err := cfg.DecodeDriverConfig(&tc); err != nil {
		return nil, nil, fmt.Errorf("beam task config: %w", err)
	}
	if err := tc.validate(pcfg.RequireSHA256); err != nil {
		return nil, nil, fmt.Errorf("beam task config: %w", err)
	}
	if r := cfg.Resources; r != nil && r.NomadResources != nil && r.NomadResources.Memory.MemoryMaxMB < 0 {
		// The executor would run the node with no memory limit at all.
		return nil, nil, fmt.Errorf("beam task config: resources.memory_max = %d (no limit) is refused; "+
			"set memory_max to a size in MB, or leave it out", r.NomadResources.Memory.MemoryMaxMB)
	}
	if cfg.User == "" && pcfg.DefaultUser == dynamicDefault {
		return nil, nil, d.fail(cfg, `default_user = "dynamic", but Nomad gave the task no dynamic workload user; `+
			"check the client's user.dynamic_user_min and dynamic_user_max")
	}
	if cfg.User == "" {
		// As exec: a task that names no user runs as an unprivileged one.
		// The client's user.denylist applies to the jobspec's user only
		// when the client lists beam in user.checked_drivers.
		cfg.User = pcfg.DefaultUser
	}
	if _, err := d.sandboxFor(cfg); err != nil {
		return nil, nil, d.fail(cfg, "%v", err)
	}
	logger := d.logger.With("alloc_id", cfg.AllocID, "task_name", cfg.Name)

	started, node := false, ""
	defer func() {
		if !started {
			d.releaseCache(cfg.ID) // a failed start holds nothing
			d.uids.release(cfg.ID)
			d.unregisterNode(node, nodeOwner(cfg))
			d.stopLocalMapper(cfg.ID)
		}
	}()
	p, err := d.prepare(d.ctx, cfg, &tc, logger)
	if err != nil {
		return nil, nil, err
	}
	// Held open until the executor has the task's log FIFOs open too.
	logs, err := openTaskLogs(cfg)
	if err != nil {
		return nil, nil, err
	}
	defer logs.Close()
	if err := d.runPreCommands(d.ctx, cfg, &tc, p, logs); err != nil {
		return nil, nil, err
	}

	handle := drivers.NewTaskHandle(taskHandleVersion)
	handle.Config = cfg

	if err := os.MkdirAll(d.privateDir(cfg), 0o700); err != nil {
		return nil, nil, fmt.Errorf("data_dir: %w", err)
	}
	execCfg := &executor.ExecutorConfig{
		// In data_dir: the executor (root) would append to whatever the
		// task left in its own directory under that name.
		LogFile:  filepath.Join(d.privateDir(cfg), "executor.out"),
		LogLevel: "debug",
		Compute:  client.Topology.Compute(),
	}
	// The port mapper answers for the node's name from now on, and accepts
	// its registration: no other process can take the name first.
	if err := d.registerNode(p.node, p.distPort, nodeOwner(cfg)); err != nil {
		return nil, nil, d.fail(cfg, "%v", err)
	}
	node = p.node
	if err := d.startLocalMapper(cfg, p.node, p.inside); err != nil {
		return nil, nil, d.fail(cfg, "%v", err)
	}
	launchCmd, err := d.launchCommand(cfg, append([]string{p.cmd.Path}, p.cmd.Args...), p.env, p.release.Root, logs)
	if err != nil {
		return nil, nil, d.fail(cfg, "%v", err)
	}
	exec, pluginClient, err := executor.CreateExecutor(logger.With("task_id", cfg.ID), client, execCfg)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create executor: %w", err)
	}

	ps, err := exec.Launch(launchCmd)
	if err != nil {
		pluginClient.Kill()
		return nil, nil, fmt.Errorf("failed to start %s: %w", p.release.Name, err)
	}

	h := newHandle(d.ctx, exec, pluginClient, logger, cfg)
	h.startedAt = time.Now().Round(time.Millisecond)
	h.pid = ps.Pid
	h.state = taskState{
		ReattachConfig: pstructs.ReattachConfigFromGoPlugin(pluginClient.ReattachConfig()),
		Pid:            ps.Pid,
		ReleaseName:    p.release.Name,
		ReleaseVersion: p.release.Version,
		ReleaseKind:    string(p.release.Kind),
		ReleaseRoot:    p.release.Root,
		Node:           p.node,
		DistPort:       p.distPort,
		DistInside:     p.inside,
		ERTS:           p.release.ERTS,
		Home:           p.home,
		SSLDistOptFile: p.tlsOpt,
		Trees:          p.trees,
		User:           cfg.User,
	}
	h.state.StartedAt = h.startedAt
	if err := handle.SetDriverState(&h.state); err != nil {
		h.cancel()
		_ = exec.Shutdown("", 0)
		pluginClient.Kill()
		return nil, nil, fmt.Errorf("failed to set driver state: %w", err)
	}
	d.tasks.Set(cfg.ID, h)
	started = true
	d.startCluster(h, tc.ClusterService)
	d.startHot(h, tc.HotUpgrade)
	go h.run()

	// The version and kind go where the UI and tools see them: the task
	// event and its details.
	d.eventWith(cfg, map[string]string{"beam.version": p.release.Version, "beam.base": p.base, "beam.release": p.release.Name, "beam.kind": string(p.release.Kind), hotspec.DetailNode: p.node, "beam.erts": p.release.ERTS},
		"Started %s %s (%s release) as pid %d%s",
		p.release.Name, p.release.Version, p.release.Kind, ps.Pid, nodeSuffix(p.node))
	return handle, nil, nil
}

// releaseCache drops a task's hold on the cached releases it used.
func (d *Driver) releaseCache(taskID string) {
	if store, err := d.releases(); err == nil {
		store.Release(taskID)
	}
}

// startCluster starts the task's clustering loop when it names a service.
func (d *Driver) startCluster(h *taskHandle, service string) {
	if service == "" || h.state.Node == "" {
		return
	}
	go d.cluster(h.ctx, h, service)
}

func nodeSuffix(node string) string {
	if node == "" {
		return ", distribution off"
	}
	return ", node " + node
}

// RecoverTask reattaches to the executor of a node that a previous plugin
// instance started.
func (d *Driver) RecoverTask(handle *drivers.TaskHandle) error {
	if handle == nil {
		return errors.New("error: handle cannot be nil")
	}
	if _, ok := d.tasks.Get(handle.Config.ID); ok {
		return nil
	}
	var st taskState
	if err := handle.GetDriverState(&st); err != nil {
		return fmt.Errorf("failed to decode task state from handle: %w", err)
	}
	if st.User != "" {
		handle.Config.User = st.User
	}
	plugRC, err := pstructs.ReattachConfigToGoPlugin(st.ReattachConfig)
	if err != nil {
		return fmt.Errorf("failed to build reattach config: %w", err)
	}
	_, client := d.cfg()
	logger := d.logger.With("alloc_id", handle.Config.AllocID, "task_name", handle.Config.Name)
	exec, pluginClient, err := executor.ReattachToExecutor(plugRC, logger.With("task_id", handle.Config.ID), client.Topology.Compute())
	if err != nil {
		return fmt.Errorf("failed to reattach to executor: %w", err)
	}
	h := newHandle(d.ctx, exec, pluginClient, logger, handle.Config)
	h.startedAt, h.pid, h.state = st.StartedAt, st.Pid, st
	d.tasks.Set(handle.Config.ID, h)
	if st.Node != "" {
		if _, err := d.portMapper(); err != nil {
			logger.Error("node cannot be found by its peers", "error", err)
		}
		if err := d.registerNode(st.Node, st.DistPort, nodeOwner(handle.Config)); err != nil {
			logger.Error("node cannot be found by its peers", "error", err)
		}
		if err := d.startLocalMapper(handle.Config, st.Node, st.DistInside); err != nil {
			logger.Error("node cannot register in its namespace", "error", err)
		}
	}
	var tc TaskConfig
	if err := handle.Config.DecodeDriverConfig(&tc); err == nil {
		d.startCluster(h, tc.ClusterService)
		d.startHot(h, tc.HotUpgrade)
	}
	go h.run()
	logger.Info("recovered task", "pid", st.Pid, "node", st.Node)
	return nil
}
