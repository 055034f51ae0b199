package driver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/launch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
)

// prepared is a release on disk, ready to start.
type prepared struct {
	release  *release.Release
	cmd      *launch.Command
	env      []string
	node     string
	distPort int // the host port peers dial
	// inside is the port the node listens on: distPort, or in a
	// bridge-mode group, the port Nomad maps distPort to.
	inside int
	home   string
	tlsOpt string
	// base is the version the allocation started from; release.Version
	// differs after a hot upgrade and a restart.
	base string
	// trees maps each version on the node to its plugin-owned release
	// root.
	trees map[string]string
}

// prepare fetches and verifies the release, gives the task its own copy of
// it in local/release, and builds the command that starts it. Each step
// emits a task event; a failure emits one that says why and what to do.
//
// The task's user can change anything in its task directory, so nothing
// there is read or trusted: the release is read from the plugin's own tree,
// and the task's copy and secrets/beam are made anew on every start, a
// restart within the allocation included. A restart rebuilds the release
// as it stood, hot-upgrade packages included, from the plugin's record.
func (d *Driver) prepare(ctx context.Context, cfg *drivers.TaskConfig, tc *TaskConfig, logger hclog.Logger) (*prepared, error) {
	src := fetch.Redact(tc.Release.Source)
	rec := d.loadRecord(cfg)
	if rec != nil && (rec.Source != tc.Release.Source || rec.SHA256 != tc.Release.SHA256) {
		rec = nil
	}
	if rec != nil {
		d.event(cfg, "Restarting: the release is rebuilt from this node's verified copy")
	} else {
		rec = &record{AllocDir: cfg.AllocDir, Source: tc.Release.Source, SHA256: tc.Release.SHA256}
	}
	node, port, inside, err := nodeName(cfg, tc)
	if err != nil {
		return nil, d.fail(cfg, "%v", err)
	}
	pcfg, _ := d.cfg()
	if err := pcfg.checkNodeName(cfg, tc.NodeName); err != nil {
		return nil, d.fail(cfg, "%v", err)
	}
	if d.claimed(cfg, node) {
		return nil, d.fail(cfg, "node name %s belongs to another allocation on this client; set another node_name", shortName(node))
	}
	rec.Node = node
	tree, sum, err := d.releaseTree(ctx, cfg, tc.Release, logger)
	if err != nil {
		return nil, err
	}
	d.holdForAlloc(cfg, sum)
	rel, err := release.Find(tree, tc.Release.Name)
	if err != nil {
		return nil, d.fail(cfg, "Bad release in %s: %v", src, err)
	}
	host := d.host.probe(ctx)
	if err := rel.Check(host.ERTS); err != nil {
		return nil, d.fail(cfg, "%v", err)
	}
	if rec.Base != rel.Version {
		// A new allocation, or a source without a sha256 whose content
		// changed since: what was recorded is of another release.
		rec.Base, rec.Hot, rec.Permanent = rel.Version, nil, ""
	}
	rec.Trees = map[string]string{rec.Base: rel.Root}

	td, err := taskdir.Open(cfg.TaskDir().Dir)
	if err != nil {
		return nil, d.fail(cfg, "%v", err)
	}
	defer td.Close()
	owner := taskdir.Root
	if tc.HotUpgrade.Enabled && cfg.User != "" {
		// release_handler, in the node, writes the release's files.
		if owner, err = taskdir.Lookup(cfg.User); err != nil {
			return nil, d.fail(cfg, "%v", err)
		}
	}
	running, err := d.copyRelease(ctx, cfg, td, tree, rel, rec, owner, tc.HotUpgrade.Enabled, logger)
	if err != nil {
		return nil, err
	}
	if err := d.saveRecord(cfg, rec); err != nil {
		return nil, d.fail(cfg, "cannot save the task's record in data_dir: %v", err)
	}
	d.prunePrivate(cfg, rec.Trees)

	cookie, err := readCookie(td, cfg, tc)
	if err != nil {
		return nil, d.fail(cfg, "%v", err)
	}
	epmdPort := 0
	if node != "" {
		if epmdPort, err = d.portMapper(); err != nil {
			return nil, d.fail(cfg, "%v", err)
		}
	}
	out, err := td.Fresh("secrets/beam", 0o700)
	if err != nil {
		return nil, d.fail(cfg, "cannot prepare secrets/beam: %v", err)
	}
	defer out.Close()
	spec := launch.Spec{
		Release:  running,
		Tree:     rec.Trees[running.Version],
		Node:     node,
		DistPort: inside,
		EPMDPort: epmdPort,
		Dir:      filepath.Join(cfg.TaskDir().SecretsDir, "beam"),
		Out:      out,
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
		// The node gets its own copies: templates belong to root.
		for _, f := range []struct {
			field, rel string
			data       *[]byte
		}{{"tls.cert_file", tc.TLS.CertFile, &spec.TLS.CertPEM}, {"tls.key_file", tc.TLS.KeyFile, &spec.TLS.KeyPEM},
			{"tls.ca_file", tc.TLS.CAFile, &spec.TLS.CAPEM}} {
			if *f.data, err = td.ReadFile(f.rel, 1<<20); err != nil {
				return nil, d.fail(cfg, "%s = %q cannot be read (%v); render it into the task's secrets/ with a template", f.field, f.rel, why(err))
			}
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
	return &prepared{release: running, cmd: cmd, env: mergeEnv(cfg.EnvList(), cmd.Env, unset),
		node: node, distPort: port, inside: inside, home: cmd.Env["HOME"], tlsOpt: cmd.SSLDistOptFile, base: rec.Base,
		trees: rec.Trees}, nil
}

// readCookie returns the distribution cookie from the task's cookie_file or
// cookie_env. Errors never quote it.
func readCookie(td *taskdir.Dir, cfg *drivers.TaskConfig, tc *TaskConfig) (string, error) {
	switch {
	case tc.CookieFile != "":
		// Through the task directory's root: the driver runs as root, and a
		// link planted in the task directory must not let it read a file
		// outside.
		b, err := td.ReadFile(filepath.ToSlash(tc.CookieFile), 4096)
		if err != nil {
			return "", fmt.Errorf("cookie_file %s cannot be read (%v); render it with a template, "+
				"for example from the Nomad Variable nomad/jobs/%s", tc.CookieFile, why(err), cfg.JobName)
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

// why returns the cause of a file error without the path it names.
func why(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

var nodeUnsafe = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// nodeName returns the node's full name and distribution port. By default
// the name is JOB-ALLOC8@IP: unique per allocation, canaries included,
// where an allocation index would repeat.
func nodeName(cfg *drivers.TaskConfig, tc *TaskConfig) (string, int, int, error) {
	if tc.DistPort == "" {
		return "", 0, 0, nil
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
				name = shortNodeName(cfg.JobName, cfg.AllocID, "")
			}
			if !strings.Contains(name, "@") {
				host := p.HostIP
				if host == "" || host == "0.0.0.0" {
					host = "127.0.0.1"
				}
				name += "@" + host
			}
			inside := p.Value
			if bridged(cfg) && p.To > 0 {
				inside = p.To
			}
			return name, p.Value, inside, nil
		}
	}
	return "", 0, 0, fmt.Errorf("dist_port = %q is not a port of this task's group network (ports: %s); "+
		"add it to the group's network block: port %q {}", tc.DistPort, strings.Join(ports, ", "), tc.DistPort)
}

// shortNodeName is the node name, without @host, that the driver gives an
// allocation of job: the task's node_name, else JOB-ALLOC8.
func shortNodeName(job, allocID, nodeName string) string {
	if nodeName != "" {
		short, _, _ := strings.Cut(nodeName, "@")
		return short
	}
	if len(allocID) > 8 {
		allocID = allocID[:8]
	}
	return strings.Trim(nodeUnsafe.ReplaceAllString(job, "-"), "-") + "-" + allocID
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
