package driver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/client/lib/cgroupslib"
	"github.com/hashicorp/nomad/drivers/shared/executor"
	"github.com/hashicorp/nomad/plugins/drivers"
	dproto "github.com/hashicorp/nomad/plugins/drivers/proto"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/sandbox"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
)

// Everything the driver runs for a task (the node, its pre-commands,
// control calls, `nomad alloc exec`) runs through the sandbox: the plugin
// binary, as root, which drops to the task's user and confines itself
// before it execs the program. The executor is told no user, so that its
// own drop (which keeps group 0 as a supplementary group in Nomad 1.11)
// never applies.

// sandboxFor returns how a task's programs run: the task's user (already
// defaulted by StartTask), and unless isolation is "none", Landlock rules
// that leave the task its own directories and the host's system paths
// read-only.
func (d *Driver) sandboxFor(cfg *drivers.TaskConfig) (sandbox.Spec, error) {
	pcfg, _ := d.cfg()
	s, err := credentials(cfg.User)
	if err != nil {
		return sandbox.Spec{}, err
	}
	switch {
	case s.UID == 0 && !pcfg.AllowRoot:
		return sandbox.Spec{}, fmt.Errorf("task user %q is root, which this client does not allow (allow_root in the beam plugin config); "+
			"drop user from the task to run as %s", cfg.User, pcfg.DefaultUser)
	case s.UID != 0 && !d.userAllowed(pcfg, cfg):
		return sandbox.Spec{}, fmt.Errorf("task user %q is not allowed on this client: the operator lists the users jobs may name in "+
			"allowed_users of the beam plugin config; drop user from the task to run as %s", cfg.User, pcfg.DefaultUser)
	}
	if pcfg.Isolation == isolationNone {
		return s, nil
	}
	s.Landlock = true
	s.ReadOnly = append(append([]string(nil), sandbox.SystemReadOnly...), pcfg.ReadOnlyPaths...)
	if erl := d.host.probe(d.ctx).Path; erl != "" {
		// A host Erlang outside /usr (kerl, asdf, a build in /opt), for
		// releases without their own erts.
		if root, ok := otpRoot(erl); ok {
			s.ReadOnly = append(s.ReadOnly, root)
		}
	}
	// The task's own directories, one by one: never the task directory
	// whole, whose private/ holds what Nomad keeps from the task (the
	// Vault token it rewrites as root on renewal). Landlock rules only
	// add rights, so a grant of the parent could not be taken back.
	td := cfg.TaskDir()
	own := []string{td.LocalDir, td.SecretsDir, filepath.Join(td.Dir, "tmp"), td.SharedAllocDir}
	s.ReadWrite = append(append(own, sandbox.Devices...), pcfg.ReadWritePaths...)
	return s, nil
}

// otpRoot returns the root of the OTP installation whose erl is at erl:
// the directory with its erts-* and lib, never "/".
func otpRoot(erl string) (string, bool) {
	real, err := filepath.EvalSymlinks(erl)
	if err != nil {
		return "", false
	}
	for dir := filepath.Dir(real); dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		erts, _ := filepath.Glob(filepath.Join(dir, "erts-*"))
		if fi, err := os.Stat(filepath.Join(dir, "lib")); err == nil && fi.IsDir() && len(erts) > 0 {
			return dir, true
		}
	}
	return "", false
}

// userAllowed reports whether task cfg may run as its user: the default
// user, a user the operator lists, or, with default_user = "dynamic", a
// dynamic workload user from the client's pool that has no passwd or
// group entry and that no other task of this client runs as. A jobspec can
// name nomad-N itself, so the name alone proves nothing.
func (d *Driver) userAllowed(pcfg *Config, cfg *drivers.TaskConfig) bool {
	name := cfg.User
	listed := name == pcfg.DefaultUser || slices.Contains(pcfg.AllowedUsers, name) || slices.Contains(pcfg.AllowedUsers, "*")
	id, dynamic := taskdir.DynamicID(name)
	if !dynamic {
		return listed
	}
	if !listed {
		if pcfg.DefaultUser != dynamicDefault || id < pcfg.DynamicUserMin || id > pcfg.DynamicUserMax {
			return false
		}
		if _, err := user.LookupId(strconv.Itoa(id)); err == nil {
			return false
		}
		if _, err := user.LookupGroupId(strconv.Itoa(id)); err == nil {
			return false
		}
	}
	// One task per dynamic uid, whichever way its name was allowed. A task
	// recovered after a plugin restart holds its uid without a claim.
	for _, h := range d.tasks.All() {
		if other, ok := taskdir.DynamicID(h.taskConfig.User); ok && other == id && h.taskConfig.ID != cfg.ID && h.IsRunning() {
			return false
		}
	}
	// A task with no handle yet is starting: its claim stands until its
	// start fails (StartTask releases it) or it is destroyed.
	return d.uids.claim(strconv.Itoa(id), cfg.ID, func(owner string) bool {
		h, ok := d.tasks.Get(owner)
		return !ok || h.IsRunning()
	})
}

// credentials looks up a task user's uid, gid and groups.
func credentials(name string) (sandbox.Spec, error) {
	if id, ok := taskdir.DynamicID(name); ok {
		return sandbox.Spec{UID: uint32(id), GID: uint32(id), Groups: []uint32{uint32(id)}}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return sandbox.Spec{}, fmt.Errorf("task user %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return sandbox.Spec{}, fmt.Errorf("task user %q has a uid or gid that is not a number", name)
	}
	s := sandbox.Spec{UID: uint32(uid), GID: uint32(gid)}
	ids, err := u.GroupIds()
	if err != nil {
		return sandbox.Spec{}, fmt.Errorf("task user %q: groups: %w", name, err)
	}
	for _, g := range ids {
		if id, err := strconv.ParseUint(g, 10, 32); err == nil {
			s.Groups = append(s.Groups, uint32(id))
		}
	}
	return s, nil
}

// joinCgroups lists the task's cgroups for a process the executor starts
// next to the node. On cgroups v1 the universal executor leaves such
// processes in its own cgroup; the sandbox joins the task's.
func joinCgroups(cfg *drivers.TaskConfig) []string {
	if cgroupslib.GetMode() != cgroupslib.CG1 || cfg.Resources == nil || cfg.Resources.LinuxResources == nil {
		return nil
	}
	var dirs []string
	for _, iface := range []string{"freezer", "cpu", "memory"} {
		dirs = append(dirs, cgroupslib.PathCG1(cfg.AllocID, cfg.Name, iface))
	}
	if p := cfg.Resources.LinuxResources.CpusetCgroupPath; p != "" {
		dirs = append(dirs, p)
	}
	return dirs
}

// sandboxBinary is the plugin binary, which is the sandbox.
func sandboxBinary() (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("the plugin's own path: %w", err)
	}
	return filepath.EvalSymlinks(self)
}

// launchPath names the sandbox for the executor's Launch. The executor
// looks a command up under the task's local/ and then its directory
// before the host, so an absolute path would find whatever the task
// planted at local/opt/.../nomad-driver-beam, and run it as root. A path
// that climbs out of every directory above the task's resolves to the
// host's binary from each of those places.
func launchPath(taskDir string) (string, error) {
	bin, err := sandboxBinary()
	if err != nil {
		return "", err
	}
	up := strings.Count(filepath.Clean(taskDir), string(filepath.Separator)) + 2
	return strings.Repeat("../", up) + strings.TrimPrefix(bin, "/"), nil
}

// sandboxEnv is the whole environment the executor gives the sandbox. The
// task's own goes through a file: the sandbox starts as root, and a job's
// LD_PRELOAD must never reach a root process.
var sandboxEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// runInside runs argv in the task as s says, through the executor, feeding
// it stdin. The program ends when ctx does.
func runInside(ctx context.Context, ex executor.Executor, s sandbox.Spec, stdin []byte) (stdout, stderr []byte, code int, err error) {
	bin, err := sandboxBinary()
	if err != nil {
		return nil, nil, 0, err
	}
	st := &callStream{stdin: stdin}
	if err := ex.ExecStreaming(ctx, append([]string{bin}, s.Args()...), false, st); err != nil {
		return nil, nil, 0, err
	}
	if !st.exited {
		return nil, nil, 0, fmt.Errorf("the executor reported no exit status")
	}
	return st.out.Bytes(), st.err.Bytes(), st.code, nil
}

// maxCallOutput caps what a call keeps of each of its outputs.
const maxCallOutput = 1 << 20

// callStream is an ExecStreaming session with no terminal: it sends stdin
// once and collects the output and the exit code.
type callStream struct {
	stdin    []byte
	sent     bool
	out, err bytes.Buffer
	exited   bool
	code     int
}

func (c *callStream) Recv() (*drivers.ExecTaskStreamingRequestMsg, error) {
	if c.sent {
		return nil, io.EOF
	}
	c.sent = true
	return &drivers.ExecTaskStreamingRequestMsg{
		Stdin: &dproto.ExecTaskStreamingIOOperation{Data: c.stdin, Close: true},
	}, nil
}

func (c *callStream) Send(m *drivers.ExecTaskStreamingResponseMsg) error {
	if m.Stdout != nil {
		keepCapped(&c.out, m.Stdout.Data)
	}
	if m.Stderr != nil {
		keepCapped(&c.err, m.Stderr.Data)
	}
	if m.Exited {
		c.exited = true
		if m.Result != nil {
			c.code = int(m.Result.ExitCode)
		}
	}
	return nil
}

func keepCapped(b *bytes.Buffer, p []byte) {
	if room := maxCallOutput - b.Len(); room > 0 {
		b.Write(p[:min(len(p), room)])
	}
}

// launchCommand is the executor's command for a program that starts the
// task (the node, or a pre-command): the sandbox around argv, with the
// task's environment in data_dir, resources and network namespace.
func (d *Driver) launchCommand(cfg *drivers.TaskConfig, argv, env []string, dir string, logs *taskLogs) (*executor.ExecCommand, error) {
	box, err := d.sandboxFor(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(d.privateDir(cfg), 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	box.EnvFile = filepath.Join(d.privateDir(cfg), "env")
	if err := sandbox.WriteEnv(box.EnvFile, env); err != nil {
		return nil, fmt.Errorf("cannot write the task's environment in data_dir: %w", err)
	}
	box.Argv, box.Dir = argv, dir
	bin, err := launchPath(cfg.TaskDir().Dir)
	if err != nil {
		return nil, err
	}
	return &executor.ExecCommand{
		Cmd:              bin,
		Args:             box.Args(),
		Env:              sandboxEnv,
		TaskDir:          cfg.TaskDir().Dir,
		WorkDir:          cfg.TaskDir().Dir,
		StdoutPath:       logs.stdoutPath,
		StderrPath:       logs.stderrPath,
		Resources:        cfg.Resources,
		NetworkIsolation: cfg.NetworkIsolation,
	}, nil
}

// execSpec is the sandbox for a command that `nomad alloc exec` or a
// script check runs in the task: with the task's environment, from the
// release's root.
func (d *Driver) execSpec(h *taskHandle, argv []string) (sandbox.Spec, error) {
	box, err := d.sandboxFor(h.taskConfig)
	if err != nil {
		return sandbox.Spec{}, err
	}
	box.Cgroups = joinCgroups(h.taskConfig)
	box.EnvFile = filepath.Join(d.privateDir(h.taskConfig), "env")
	box.Argv, box.Dir = argv, h.state.ReleaseRoot
	return box, nil
}
