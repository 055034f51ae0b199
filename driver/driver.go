// Package driver is the beam task driver for Nomad: it fetches a BEAM
// release, starts it as a node under Nomad's executor, and supervises it.
package driver

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/client/lib/numalib"
	"github.com/hashicorp/nomad/drivers/shared/eventer"
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
	// uids holds the jobspec-named dynamic users of starting and running
	// tasks.
	uids   uidClaims
	ctx    context.Context
	logger hclog.Logger

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
	if c.Sources == nil {
		d.logger.Warn("no sources block in the plugin config: any job may fetch any source with this client's network " +
			"and cloud credentials, loopback and other teams' buckets included; on a client that several teams share, " +
			"set sources { namespace \"NAME\" { allow = [...] } }")
	}
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
