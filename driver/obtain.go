package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/cache"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
)

// tarball is a release tarball on the node, ready to unpack.
type tarball struct {
	path   string
	size   int64
	sha256 string // empty when it could not be checked
	note   string // how it was obtained, for the unpack event
	done   func() // removes an uncached download
}

// obtain gets the task's release tarball: from the node's cache when it
// holds that sha256, otherwise downloaded once for every task that waits
// on it, verified, and kept. The sha256 comes from the task config or a
// <tarball>.sha256 next to the tarball.
func (d *Driver) obtain(ctx context.Context, cfg *drivers.TaskConfig, rel ReleaseConfig, logger hclog.Logger) (*tarball, error) {
	pcfg, _ := d.cfg()
	store, err := d.store(cfg)
	if err != nil {
		return nil, d.fail(cfg, "%v", err)
	}
	src := fetch.Redact(rel.Source)
	// Before the cache too: a cached release is reused only for a source
	// the task's namespace may fetch.
	policy := pcfg.sourcePolicy(cfg.Namespace)
	if err := policy.Check(rel.Source); err != nil {
		return nil, d.fail(cfg, "Fetch refused: %v", err)
	}
	identity := taskIdentity(cfg, pcfg)
	fetcher := d.fetcher().WithPolicy(policy, pcfg.agentAddrs()).WithIdentity(identity).WithRetry(func(attempt int, err error, wait time.Duration) {
		d.event(cfg, "Fetch attempt %d failed, retrying in %s: %v", attempt, wait.Round(100*time.Millisecond), err)
	})

	sum := rel.SHA256
	if sum == "" {
		s, err := fetcher.Checksum(ctx, rel.Source)
		var nf *fetch.NotFound
		if errors.Is(err, fetch.ErrDenied) {
			// Stores answer 403 for a missing object when the client may
			// not list the bucket: as good as absent here.
			err = &fetch.NotFound{Source: fetch.Redact(rel.Source) + ".sha256"}
		}
		switch {
		case err == nil:
			sum = s
		case errors.As(err, &nf) && pcfg.RequireSHA256:
			return nil, d.fail(cfg, "%s is not set and %s.sha256 does not exist; "+
				"set %s (sha256sum of the tarball) or publish the .sha256 next to it", rel.field(), src, rel.field())
		case !errors.As(err, &nf):
			return nil, d.fail(cfg, "Fetch failed for %s.sha256: %v", src, err)
		}
	}

	// Nomad keeps a task's last 10 events: report a long download at its
	// first tick and then every quarter, not every tick.
	var lastQuarter int64 = -1
	var lastUnknown time.Time
	progress := func(done, total int64) {
		if total > 0 {
			if q := done * 4 / total; q > lastQuarter {
				lastQuarter = q
				d.event(cfg, "Fetching release: %s", progressText(done, total))
			}
			return
		}
		if time.Since(lastUnknown) >= 30*time.Second {
			lastUnknown = time.Now()
			d.event(cfg, "Fetching release: %s", progressText(done, total))
		}
	}
	start := time.Now()
	if sum == "" {
		// Nothing to check it against, so nothing to share: a plain
		// download for this task alone.
		d.event(cfg, "Fetching release from %s (no sha256 to check)", src)
		tmp := filepath.Join(pcfg.DataDir, "downloads", cfg.AllocID+"-"+cfg.Name+".tar.gz.part")
		if err := os.MkdirAll(filepath.Dir(tmp), 0o700); err != nil {
			return nil, d.fail(cfg, "cannot create data_dir %s: %v", pcfg.DataDir, err)
		}
		n, err := fetcher.Download(ctx, rel.Source, tmp, progress)
		if err != nil {
			os.Remove(tmp)
			return nil, d.fail(cfg, "Fetch failed: %v", err)
		}
		return &tarball{path: tmp, size: n, note: "sha256 not checked", done: func() { os.Remove(tmp) }}, nil
	}

	if identity != nil {
		// The cache may hold it, fetched by another task of the
		// namespace: this one proves with its own role that it may read
		// the source before it gets the cached copy.
		if _, err := fetcher.Stat(ctx, rel.Source); err != nil {
			return nil, d.fail(cfg, "Fetch failed: %v", err)
		}
	}
	d.event(cfg, "Fetching release from %s", src)
	path, st, err := store.Get(sum, cfg.ID, func(tmp string) (int64, error) {
		return fetcher.Download(ctx, rel.Source, tmp, progress)
	})
	var ce *cache.ChecksumError
	switch {
	case errors.As(err, &ce):
		return nil, d.fail(cfg, "Fetch failed: sha256 mismatch for %s: expected %s, got %s; "+
			"check %s or republish the tarball", src, ce.Want, ce.Got, rel.field())
	case err != nil:
		return nil, d.fail(cfg, "Fetch failed: %v", err)
	}
	fi, _ := os.Stat(path)
	t := &tarball{path: path, sha256: sum, done: func() {}}
	if fi != nil {
		t.size = fi.Size()
	}
	switch {
	case st.Hit && st.Waited:
		t.note = fmt.Sprintf("sha256 %s… verified, downloaded once for this node by another task", sum[:12])
	case st.Hit:
		t.note = fmt.Sprintf("sha256 %s… verified, from the node's cache", sum[:12])
	default:
		t.note = fmt.Sprintf("sha256 %s… verified, fetched in %s", sum[:12], time.Since(start).Round(10*time.Millisecond))
	}
	logger.Info("release ready", "source", src, "sha256", sum, "cache_hit", st.Hit, "fetched_bytes", st.Fetched)
	return t, nil
}

// taskIdentity returns the workload identity that the task's S3 fetches
// assume its role with, or nil. The token is read anew for each exchange,
// through the task directory without following any link: secrets/ is the
// task's to write, and a link there must not make root read a file for it.
func taskIdentity(cfg *drivers.TaskConfig, pcfg *Config) *fetch.Identity {
	var tc TaskConfig
	if err := cfg.DecodeDriverConfig(&tc); err != nil || tc.AWSIdentity.Name == "" {
		return nil
	}
	file := "secrets/nomad_" + tc.AWSIdentity.Name + ".jwt"
	dir := cfg.TaskDir().Dir
	return &fetch.Identity{
		RoleARN:     tc.AWSIdentity.RoleARN,
		Session:     "beam-" + cfg.AllocID,
		STSEndpoint: pcfg.STSEndpoint,
		Token: func() ([]byte, error) {
			td, err := taskdir.Open(dir)
			if err != nil {
				return nil, err
			}
			defer td.Close()
			b, err := td.ReadFile(file, 64<<10)
			if err != nil {
				return nil, fmt.Errorf("the identity token %s cannot be read (%v): add identity { name = %q, file = true } to the task",
					file, why(err), tc.AWSIdentity.Name)
			}
			return bytes.TrimSpace(b), nil
		},
	}
}

// fetcher returns the plugin's fetcher, built from its config once.
func (d *Driver) fetcher() *fetch.Fetcher {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fetch == nil {
		d.fetch = newFetcher(d.config)
	}
	return d.fetch
}

func newFetcher(cfg *Config) *fetch.Fetcher {
	window, _ := time.ParseDuration(cfg.FetchRetryWindow)
	return fetch.New(fetch.Config{
		S3Endpoint:  cfg.S3Endpoint,
		S3Region:    cfg.S3Region,
		S3PathStyle: cfg.S3PathStyle,
		RetryWindow: window,
		MaxBytes:    int64(cfg.MaxDownloadMB) << 20,
		FileRoots:   cfg.FileRoots,
	})
}

// releases returns the node's release cache, opened once per config.
func (d *Driver) releases() (*cache.Cache, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cache == nil {
		c, err := cache.New(filepath.Join(d.config.DataDir, "cache"), int64(d.config.CacheMaxMB)<<20)
		if err != nil {
			return nil, fmt.Errorf("release cache in data_dir %s: %w", d.config.DataDir, err)
		}
		d.cache = c
	}
	return d.cache, nil
}
