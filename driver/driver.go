// Package driver is the beam task driver for Nomad: it fetches a BEAM
// release, starts it as a node under Nomad's executor, and supervises it.
package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/client/lib/numalib"
	"github.com/hashicorp/nomad/drivers/shared/eventer"
	"github.com/hashicorp/nomad/drivers/shared/executor"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/cache"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/epmd"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/sandbox"
)

var (
	_ drivers.DriverPlugin               = (*Driver)(nil)
	_ drivers.ExecTaskStreamingRawDriver = (*Driver)(nil)
)

// Driver is the beam task driver.
type Driver struct {
	eventer *eventer.Eventer
	tasks   *taskStore
	ctx     context.Context
	logger  hclog.Logger

	mu           sync.RWMutex
	config       *Config
	clientConfig *base.ClientDriverConfig
	// fetch and cache serve every task; SetConfig renews them.
	fetch *fetch.Fetcher
	cache *cache.Cache

	host *hostErlang

	// The port mapper nodes register with: the driver's own, or the
	// host's epmd when one already holds the port.
	epmdMu   sync.Mutex
	epmd     *epmd.Server
	epmdHost bool
	// locals are the port mappers in bridge-mode tasks' namespaces.
	locals map[string]*epmd.Local
}

// New returns a beam driver. ctx ends the driver's background work.
func New(ctx context.Context, logger hclog.Logger) *Driver {
	logger = logger.Named(PluginName)
	return &Driver{
		eventer: eventer.NewEventer(ctx, logger),
		tasks:   newTaskStore(),
		ctx:     ctx,
		logger:  logger,
		config: &Config{DataDir: "/var/lib/nomad-driver-beam", RequireSHA256: true, EPMDPort: 4369, EPMDAddr: "0.0.0.0",
			CacheMaxMB: 10240, FetchRetryWindow: "2m", MaxDownloadMB: 4096, MaxUnpackedMB: 4096,
			DefaultUser: "nobody", Isolation: isolationLandlock},
		locals: map[string]*epmd.Local{},
		host:   &hostErlang{},
		// What Nomad's agent passes replaces it in SetConfig.
		clientConfig: &base.ClientDriverConfig{Topology: numalib.Scan(numalib.PlatformScanners(false))},
	}
}

// PluginInfo describes the plugin to Nomad.
func (d *Driver) PluginInfo() (*base.PluginInfoResponse, error) { return pluginInfo, nil }

// ConfigSchema returns the plugin config schema.
func (d *Driver) ConfigSchema() (*hclspec.Spec, error) { return configSpec, nil }

// SetConfig receives the plugin config from the agent.
func (d *Driver) SetConfig(cfg *base.Config) error {
	var c Config
	if len(cfg.PluginConfig) != 0 {
		if err := base.MsgPackDecode(cfg.PluginConfig, &c); err != nil {
			return fmt.Errorf("beam plugin config: %w", err)
		}
	} else {
		c = *d.config
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("beam plugin config: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.config = &c
	d.fetch, d.cache = newFetcher(&c), nil
	if cfg.AgentConfig != nil && cfg.AgentConfig.Driver != nil && cfg.AgentConfig.Driver.Topology != nil {
		d.clientConfig = cfg.AgentConfig.Driver
	}
	d.host.setPath(c.ErlPath)
	return nil
}

// cfg returns the plugin config and the client's driver config. Nomad
// always sends the latter; without it (as in tests) the topology is scanned
// here, because the executor needs it.
func (d *Driver) cfg() (*Config, *base.ClientDriverConfig) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.config, d.clientConfig
}

// TaskConfigSchema returns the schema of a task's config block.
func (d *Driver) TaskConfigSchema() (*hclspec.Spec, error) { return taskConfigSpec, nil }

// Capabilities tells Nomad what the driver supports.
// With default_user = "dynamic", Nomad gives each task that names no user
// a uid of its own from the client's pool.
func (d *Driver) Capabilities() (*drivers.Capabilities, error) {
	pcfg, _ := d.cfg()
	if pcfg.DefaultUser != dynamicDefault {
		return capabilities, nil
	}
	c := *capabilities
	c.DynamicWorkloadUsers = true
	return &c, nil
}

// Fingerprint reports the driver's health and attributes, at once and then
// periodically.
func (d *Driver) Fingerprint(ctx context.Context) (<-chan *drivers.Fingerprint, error) {
	ch := make(chan *drivers.Fingerprint)
	go func() {
		defer close(ch)
		t := time.NewTimer(0)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.ctx.Done():
				return
			case <-t.C:
				t.Reset(fingerprintPeriod)
			}
			select {
			case ch <- d.fingerprint():
			case <-ctx.Done():
				return
			case <-d.ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

func (d *Driver) fingerprint() *drivers.Fingerprint {
	attrs := map[string]*pstructs.Attribute{
		"driver.beam":         pstructs.NewBoolAttribute(true),
		"driver.beam.version": pstructs.NewStringAttribute(PluginVersion),
	}
	fp := &drivers.Fingerprint{
		Attributes:        attrs,
		Health:            drivers.HealthStateHealthy,
		HealthDescription: drivers.DriverHealthy,
	}
	cfg, _ := d.cfg()
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		fp.Health = drivers.HealthStateUnhealthy
		fp.HealthDescription = fmt.Sprintf("data_dir %s is not usable: %v", cfg.DataDir, err)
		return fp
	}
	if cfg.Isolation == isolationLandlock {
		abi, err := sandbox.ABI()
		if err != nil {
			fp.Health = drivers.HealthStateUnhealthy
			fp.HealthDescription = fmt.Sprintf("isolation = %q: %v; set isolation = \"none\" only if job authors on this client are trusted as with raw_exec", cfg.Isolation, err)
			return fp
		}
		attrs["driver.beam.landlock_abi"] = pstructs.NewIntAttribute(int64(abi), "")
	}
	attrs["driver.beam.isolation"] = pstructs.NewStringAttribute(cfg.Isolation)
	if port, err := d.portMapper(); err != nil {
		fp.Health = drivers.HealthStateUnhealthy
		fp.HealthDescription = err.Error()
		return fp
	} else {
		attrs["driver.beam.epmd_port"] = pstructs.NewIntAttribute(int64(port), "")
	}
	if h := d.host.probe(d.ctx); h.ERTS != "" {
		attrs["driver.beam.otp_release"] = pstructs.NewStringAttribute(h.OTP)
		attrs["driver.beam.erts_version"] = pstructs.NewStringAttribute(h.ERTS)
		attrs["driver.beam.erl"] = pstructs.NewStringAttribute(h.Path)
	}
	return fp
}

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
	d.eventWith(cfg, map[string]string{"beam.version": p.release.Version, "beam.base": p.base, "beam.release": p.release.Name, "beam.kind": string(p.release.Kind), "beam.node": p.node},
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

// WaitTask returns a channel that delivers the node's exit result.
func (d *Driver) WaitTask(ctx context.Context, taskID string) (<-chan *drivers.ExitResult, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	ch := make(chan *drivers.ExitResult)
	go func() {
		defer close(ch)
		var result *drivers.ExitResult
		ps, err := h.exec.Wait(ctx)
		switch {
		case err != nil:
			result = &drivers.ExitResult{Err: fmt.Errorf("executor: error waiting on process: %w", err)}
		default:
			result = h.exitResultOf(ps)
		}
		select {
		case <-ctx.Done():
		case <-d.ctx.Done():
		case ch <- result:
		}
	}()
	return ch, nil
}

// StopTask stops the node gracefully: SIGTERM makes the BEAM run init:stop,
// so applications shut down in order. Nomad passes an empty signal when the
// jobspec sets no kill_signal, and the executor would turn that into
// SIGINT, on which the BEAM halts at once; so empty means SIGTERM here.
func (d *Driver) StopTask(taskID string, timeout time.Duration, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	if signal == "" {
		signal = "SIGTERM"
	}
	if err := h.exec.Shutdown(signal, timeout); err != nil {
		if h.pluginClient.Exited() {
			return nil
		}
		return fmt.Errorf("executor Shutdown failed: %w", err)
	}
	return nil
}

// DestroyTask removes the task, killing the node first when force is set.
func (d *Driver) DestroyTask(taskID string, force bool) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		// Still drop any cache hold: the task may have failed to start
		// or to be recovered.
		d.releaseCache(taskID)
		return drivers.ErrTaskNotFound
	}
	if h.IsRunning() && !force {
		return errors.New("cannot destroy running task")
	}
	if !h.pluginClient.Exited() {
		if h.IsRunning() {
			if err := h.exec.Shutdown("", 0); err != nil {
				h.logger.Error("destroying executor failed", "error", err)
			}
		}
		h.pluginClient.Kill()
	}
	h.cancel()
	d.unregisterNode(h.state.Node, nodeOwner(h.taskConfig))
	d.stopLocalMapper(h.taskConfig.ID)
	// The task's environment holds its secrets; it is written again on
	// the next start.
	_ = os.Remove(filepath.Join(d.privateDir(h.taskConfig), "env"))
	d.releaseCache(taskID)
	d.tasks.Delete(taskID)
	return nil
}

// InspectTask returns the task's status.
func (d *Driver) InspectTask(taskID string) (*drivers.TaskStatus, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	return h.TaskStatus(), nil
}

// TaskStats streams the node's CPU and memory use.
func (d *Driver) TaskStats(ctx context.Context, taskID string, interval time.Duration) (<-chan *drivers.TaskResourceUsage, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	return h.exec.Stats(ctx, interval)
}

// TaskEvents streams the driver's task events.
func (d *Driver) TaskEvents(ctx context.Context) (<-chan *drivers.TaskEvent, error) {
	return d.eventer.TaskEvents(ctx)
}

// SignalTask sends a signal to the node.
func (d *Driver) SignalTask(taskID string, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	sig, err := signalByName(signal)
	if err != nil {
		return err
	}
	if sig == syscall.SIGHUP {
		// SIGHUP kills a BEAM node (OTP 25), so it never reaches it. It
		// asks the driver to read the task's hot-upgrade target now; the
		// upgrade itself runs in the background and reports in task
		// events, because an error here would make Nomad kill the task.
		h.kickHot()
		return nil
	}
	return h.exec.Signal(sig)
}
