package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/launch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/unpack"
)

// prepared is a release on disk, ready to start.
type prepared struct {
	release  *release.Release
	cmd      *launch.Command
	env      []string
	node     string
	distPort int
	home     string
	tlsOpt   string
	// base is the version the allocation started from; release.Version
	// differs after a hot upgrade and a restart.
	base string
}

// prepare fetches, verifies and unpacks the release into the task's local
// directory, and builds the command that starts it. Each step emits a task
// event; a failure emits one that says why and what to do.
func (d *Driver) prepare(ctx context.Context, cfg *drivers.TaskConfig, tc *TaskConfig, logger hclog.Logger) (*prepared, error) {
	src := fetch.Redact(tc.Release.Source)
	dir := filepath.Join(cfg.TaskDir().LocalDir, "release")
	marker := filepath.Join(cfg.TaskDir().LocalDir, ".beam-release")
	stamp := tc.Release.Source + "\n" + tc.Release.SHA256 + "\n"
	base := "" // the version the allocation started from, before hot upgrades
	if b, err := os.ReadFile(marker); err == nil && strings.HasPrefix(string(b), stamp) {
		base = strings.TrimSpace(strings.TrimPrefix(string(b), stamp))
		// A restart within the allocation: the release unpacked for it
		// stays, with the hot upgrades it took. The node boots the
		// version that was made permanent.
		d.event(cfg, "Restarting from the release unpacked in this allocation")
	} else {
		tb, err := d.obtain(ctx, cfg, tc.Release, logger)
		if err != nil {
			return nil, err
		}
		defer tb.done()
		_ = os.Remove(marker)
		if err := os.RemoveAll(dir); err != nil {
			return nil, d.fail(cfg, "cannot clear %s: %v", dir, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, d.fail(cfg, "cannot create %s: %v", dir, err)
		}
		d.event(cfg, "Unpacking release (%s, %s)", humanBytes(tb.size), tb.note)
		if err := d.unpackRelease(tb, dir, logger); err != nil {
			// Leave nothing of a rejected archive behind, links included.
			_ = os.RemoveAll(dir)
			return nil, d.fail(cfg, "Unpack failed for %s: %v", src, err)
		}
	}
	rel, err := release.Find(dir, tc.Release.Name)
	if err != nil {
		return nil, d.fail(cfg, "Bad release in %s: %v", src, err)
	}
	if base == "" {
		base = rel.Version
		if err := os.WriteFile(marker, []byte(stamp+base+"\n"), 0o600); err != nil {
			return nil, d.fail(cfg, "cannot write %s: %v", marker, err)
		}
	}
	host := d.host.probe(ctx)
	if err := rel.Check(host.ERTS); err != nil {
		return nil, d.fail(cfg, "%v", err)
	}
	if tc.HotUpgrade.Enabled && rel.Kind == release.Mix {
		// mix ships no releases/RELEASES; without one release_handler
		// knows the running release by name only, and cannot go back
		// to it after an upgrade.
		pkg, err := relup.Inspect(rel.Root, rel.Name)
		if err == nil {
			err = relup.WriteRELEASES(pkg)
		}
		if err != nil {
			return nil, d.fail(cfg, "Hot upgrades need releases/RELEASES, which cannot be written: %v", err)
		}
	}
	if tc.HotUpgrade.Enabled && cfg.User != "" {
		// release_handler, in the node, writes the release's files.
		if err := launch.Chown(rel.Root, cfg.User); err != nil {
			return nil, d.fail(cfg, "Hot upgrades need the release owned by user %s: %v", cfg.User, err)
		}
	}

	node, port, err := nodeName(cfg, tc)
	if err != nil {
		return nil, d.fail(cfg, "%v", err)
	}
	cookie, err := readCookie(cfg, tc)
	if err != nil {
		return nil, d.fail(cfg, "%v", err)
	}
	epmdPort := 0
	if node != "" {
		if epmdPort, err = d.portMapper(); err != nil {
			return nil, d.fail(cfg, "%v", err)
		}
	}
	spec := launch.Spec{
		Release:  rel,
		Node:     node,
		DistPort: port,
		EPMDPort: epmdPort,
		Dir:      filepath.Join(cfg.TaskDir().SecretsDir, "beam"),
		Cookie:   cookie,
		User:     cfg.User,
	}
	if tc.TLS.enabled() {
		dir := cfg.TaskDir().Dir
		spec.TLS = &launch.TLS{
			Cert: filepath.Join(dir, tc.TLS.CertFile),
			Key:  filepath.Join(dir, tc.TLS.KeyFile),
			CA:   filepath.Join(dir, tc.TLS.CAFile),
		}
	}
	if host.Path != "" {
		spec.HostBin = filepath.Dir(host.Path)
	}
	cmd, err := launch.Build(spec)
	if err != nil {
		return nil, d.fail(cfg, "%v", err)
	}
	unset := cmd.Unset
	if tc.CookieEnv != "" {
		unset = append(unset, tc.CookieEnv)
	}
	return &prepared{release: rel, cmd: cmd, env: mergeEnv(cfg.EnvList(), cmd.Env, unset),
		node: node, distPort: port, home: cmd.Env["HOME"], tlsOpt: cmd.SSLDistOptFile, base: base}, nil
}

// readCookie returns the distribution cookie from the task's cookie_file or
// cookie_env. Errors never quote it.
func readCookie(cfg *drivers.TaskConfig, tc *TaskConfig) (string, error) {
	switch {
	case tc.CookieFile != "":
		// Through os.Root: the driver runs as root, and a link planted in
		// the task directory must not let it read a file outside.
		root, err := os.OpenRoot(cfg.TaskDir().Dir)
		if err != nil {
			return "", fmt.Errorf("cookie_file: %w", err)
		}
		defer root.Close()
		b, err := root.ReadFile(tc.CookieFile)
		if err != nil {
			return "", fmt.Errorf("cookie_file %s cannot be read (%v); render it with a template, "+
				"for example from the Nomad Variable nomad/jobs/%s", tc.CookieFile, errors.Unwrap(err), cfg.JobName)
		}
		return strings.TrimSpace(string(b)), nil
	case tc.CookieEnv != "":
		v, ok := cfg.Env[tc.CookieEnv]
		if !ok {
			return "", fmt.Errorf("cookie_env %s is not set in the task's environment; render it with a template with env = true", tc.CookieEnv)
		}
		return strings.TrimSpace(v), nil
	}
	return "", nil
}

var nodeUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// nodeName returns the node's full name and distribution port. By default
// the name is JOB-ALLOC8@IP: unique per allocation, canaries included,
// where an allocation index would repeat.
func nodeName(cfg *drivers.TaskConfig, tc *TaskConfig) (string, int, error) {
	if tc.DistPort == "" {
		return "", 0, nil
	}
	var ports []string
	if cfg.Resources != nil && cfg.Resources.Ports != nil {
		for _, p := range *cfg.Resources.Ports {
			ports = append(ports, p.Label)
			if p.Label != tc.DistPort {
				continue
			}
			name := tc.NodeName
			if name == "" {
				short := cfg.AllocID
				if len(short) > 8 {
					short = short[:8]
				}
				name = strings.Trim(nodeUnsafe.ReplaceAllString(cfg.JobName, "-"), "-") + "-" + short
			}
			if !strings.Contains(name, "@") {
				host := p.HostIP
				if host == "" || host == "0.0.0.0" {
					host = "127.0.0.1"
				}
				name += "@" + host
			}
			return name, p.Value, nil
		}
	}
	return "", 0, fmt.Errorf("dist_port = %q is not a port of this task's group network (ports: %s); "+
		"add it to the group's network block: port %q {}", tc.DistPort, strings.Join(ports, ", "), tc.DistPort)
}

// mergeEnv returns base with the keys of over replaced or added, and the
// keys in unset removed.
func mergeEnv(base []string, over map[string]string, unset []string) []string {
	out := make([]string, 0, len(base)+len(over))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := over[k]; !ok && !slices.Contains(unset, k) {
			out = append(out, kv)
		}
	}
	for k, v := range over {
		out = append(out, k+"="+v)
	}
	return out
}

func (d *Driver) event(cfg *drivers.TaskConfig, format string, args ...any) {
	d.eventWith(cfg, nil, format, args...)
}

// eventWith emits a task event with annotations, which Nomad shows as the
// event's details and tools read from the allocation.
func (d *Driver) eventWith(cfg *drivers.TaskConfig, ann map[string]string, format string, args ...any) {
	err := d.eventer.EmitEvent(&drivers.TaskEvent{
		TaskID:      cfg.ID,
		TaskName:    cfg.Name,
		AllocID:     cfg.AllocID,
		Timestamp:   time.Now(),
		Message:     fmt.Sprintf(format, args...),
		Annotations: ann,
	})
	if err != nil {
		d.logger.Warn("failed to emit task event", "error", err)
	}
}

// fail emits a task event for a failed step and returns it as an error.
func (d *Driver) fail(cfg *drivers.TaskConfig, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	d.event(cfg, "%s", err.Error())
	return err
}

func progressText(done, total int64) string {
	if total <= 0 {
		return humanBytes(done)
	}
	return fmt.Sprintf("%s of %s (%d%%)", humanBytes(done), humanBytes(total), done*100/total)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// unpackRelease puts the release into dir. When the node already keeps the
// release unpacked, the task gets a copy of that tree, which is faster than
// unpacking. Otherwise it unpacks the tarball, and the tree is built a
// second later, off the task's start path (the node boots meanwhile), for
// the next tasks.
func (d *Driver) unpackRelease(tb *tarball, dir string, logger hclog.Logger) error {
	if tb.sha256 == "" {
		return unpack.File(tb.path, dir, unpack.Limits{})
	}
	_, store, err := d.sources()
	if err != nil {
		return err
	}
	if tree, ok := store.HasTree(tb.sha256); ok {
		if err := materialize(tree, dir); err == nil {
			return nil
		}
		logger.Debug("cannot copy the cached release, unpacking it", "error", err)
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if err := unpack.File(tb.path, dir, unpack.Limits{}); err != nil {
		return err
	}
	tarball, sum := tb.path, tb.sha256
	time.AfterFunc(time.Second, func() {
		_, err := store.Tree(sum, func(tmp string) error {
			return unpack.File(tarball, tmp, unpack.Limits{})
		})
		if err != nil {
			logger.Debug("cannot keep the release unpacked", "error", err)
		}
	})
	return nil
}
