// Package launch builds the command line and environment that start a BEAM
// release in the foreground, with the node name and distribution port that
// the driver chose.
//
// Distribution never uses an epmd daemon: epmd daemonizes out of the task's
// process tree and outlives it. Instead the node listens on the fixed port
// that Nomad assigned (`-erl_epmd_port P -start_epmd false`), and client
// tools started inside the task (remote shells, rpc) dial that same port.
package launch

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
)

// Spec is what the driver decided about a node.
type Spec struct {
	Release *release.Release
	// Node is the full node name, name@host. Empty turns distribution off.
	Node string
	// DistPort is the port the node listens on for distribution. Zero with
	// a Node name gives a node that can dial out but not be reached.
	DistPort int
	// EPMDPort is the port of the driver's port mapper, where nodes
	// register and look each other up.
	EPMDPort int
	// Dir is a directory the driver owns, for generated files such as
	// vm.args and the release's tmp directory: the path the node sees.
	Dir string
	// Out is Dir, opened: every file is written through it, never by path,
	// since Dir lies in the task's directory.
	Out *os.Root
	// Tree is the root of a copy of the release that the plugin owns and
	// the task cannot change, where the release's own files (vm.args,
	// remote.vm.args) are read from. It holds the version being started.
	// Empty means Release.Root.
	Tree string
	// HostBin is the directory of the host's erl, used by releases without
	// a bundled erts. Empty when none is installed.
	HostBin string
	// Cookie is the distribution cookie; required with a Node name.
	Cookie string
	// User is the task's user, who must own the cookie. Empty means the
	// user the driver runs as.
	User string
	// TLS turns on mutual TLS distribution when not nil.
	TLS *TLS

	extra []string      // flags for every VM: the node and its client tools
	owner taskdir.Owner // of the files written
}

// Command is a process to start.
type Command struct {
	Path string
	Args []string
	// Env is added to the task's environment, and wins over it.
	Env map[string]string
	// Unset lists variables to remove from the task's environment.
	Unset []string
	// SSLDistOptFile is the node's ssl_dist_optfile under TLS distribution,
	// for clients that must speak TLS to it.
	SSLDistOptFile string
}

// Build returns the command that starts the release in s in the foreground.
// It may write files into s.Dir.
func Build(s Spec) (*Command, error) {
	if s.Release == nil {
		return nil, errors.New("launch: no release")
	}
	if s.Out == nil {
		return nil, errors.New("launch: no output directory")
	}
	if s.Tree == "" {
		s.Tree = s.Release.Root
	}
	// The names go into paths that root reads: check them here, where the
	// paths are built, whatever checked them before.
	if err := release.CheckName("the release", "name", s.Release.Name); err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	if s.Release.Kind != release.Shipment || s.Release.Version != "" {
		if err := release.CheckName("the release "+s.Release.Name, "version", s.Release.Version); err != nil {
			return nil, fmt.Errorf("launch: %w", err)
		}
	}
	owner, err := taskdir.Lookup(s.User)
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	s.owner = owner
	var tlsFlags []string
	if s.TLS != nil && s.Node != "" {
		if s.Release.BundlesERTS && !hasSSL(s.Tree) {
			return nil, fmt.Errorf("release %s has no ssl application, which TLS distribution needs; "+
				"add ssl to the release (mix: extra_applications: [:ssl]; relx: the release's app list)", s.Release.Name)
		}
		opt, err := writeSSLDistOpt(s.Out, s.Dir, s.TLS, owner)
		if err != nil {
			return nil, err
		}
		tlsFlags = []string{"-proto_dist inet_tls", "-ssl_dist_optfile " + opt}
	}
	s.extra = tlsFlags
	var c *Command
	switch s.Release.Kind {
	case release.Mix:
		c, err = mix(s)
	case release.Relx:
		c, err = relx(s)
	case release.Shipment:
		c, err = shipment(s)
	default:
		return nil, fmt.Errorf("launch: unknown release kind %q", s.Release.Kind)
	}
	if err != nil {
		return nil, err
	}
	c.Unset = CookieEnv
	if len(s.extra) > 0 {
		c.SSLDistOptFile = filepath.Join(s.Dir, "ssl_dist.conf")
	}
	if s.Node != "" && s.EPMDPort > 0 {
		// Read by the VM and by erl_call alike.
		c.Env["ERL_EPMD_PORT"] = strconv.Itoa(s.EPMDPort)
	}
	if s.Node != "" {
		if err := writeCookieHome(s.Out, s.Cookie, owner); err != nil {
			return nil, err
		}
		c.Env["HOME"] = filepath.Join(s.Dir, "home")
	}
	// The node runs as the task's user: it reads what the driver wrote for
	// it (vm.args, ssl_dist.conf) and writes its tmp dir.
	if err := taskdir.Mkdir(s.Out, "tmp", 0o700, owner); err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	if err := taskdir.ChownDir(s.Out, ".", 0o700, owner); err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	if !s.Release.BundlesERTS && s.HostBin != "" {
		c.Env["PATH"] = s.HostBin + string(os.PathListSeparator) + os.Getenv("PATH")
	}
	return c, nil
}

// mix starts `bin/NAME start`, steered by the RELEASE_* variables that
// mix's script reads.
func mix(s Spec) (*Command, error) {
	r := s.Release
	env := map[string]string{
		"RELEASE_TMP":          filepath.Join(s.Dir, "tmp"),
		"RELEASE_DISTRIBUTION": "none",
	}
	if s.Node != "" {
		env["RELEASE_DISTRIBUTION"] = "name"
		env["RELEASE_NODE"] = s.Node
		// ELIXIR_ERL_OPTIONS reaches every VM the script starts: the node
		// and the client tools (remote, rpc).
		env["ELIXIR_ERL_OPTIONS"] = strings.Join(append(distFlags(s.DistPort), s.extra...), " ")
		// Clients must not try to listen on the node's port as well.
		remote := path.Join("releases", r.Version, "remote.vm.args")
		if err := s.withLines(remote, "remote.vm.args", nil, "-dist_listen false"); err != nil {
			return nil, err
		}
		env["RELEASE_REMOTE_VM_ARGS"] = filepath.Join(s.Dir, "remote.vm.args")
	}
	return &Command{Path: filepath.Join(r.Root, "bin", r.Name), Args: []string{"start"}, Env: env}, nil
}

// relx starts `bin/NAME-VSN foreground` with a vm.args that the driver
// writes: the release's own, with the node name replaced.
func relx(s Spec) (*Command, error) {
	r := s.Release
	script := r.Name + "-" + r.Version
	if _, err := release.StatIn(s.Tree, path.Join("bin", script)); err != nil {
		script = r.Name
	}
	env := map[string]string{
		// Where relx writes vm.args and sys.config after replacing
		// ${VARS}: never inside the release, which may be shared.
		"RELX_OUT_FILE_PATH": s.Dir,
	}

	node, extra := s.Node, append(distFlags(s.DistPort), s.extra...)
	if node == "" {
		// relx insists on a node name. A node that neither listens nor
		// registers with epmd is as good as no distribution.
		node = r.Name + "@127.0.0.1"
		extra = distFlags(0)
	}
	// The driver names the node, and the cookie comes from HOME: a
	// -setcookie here would end up in beam.smp's arguments.
	drop := func(line string) bool {
		f := strings.Fields(line)
		return len(f) > 0 && (f[0] == "-name" || f[0] == "-sname" || f[0] == "-setcookie")
	}
	head := append([]string{"-name " + node}, extra...)

	src := path.Join("releases", r.Version, "vm.args")
	if _, err := release.StatIn(s.Tree, src+".src"); err == nil {
		// Let relx replace ${VARS} itself, from our copy.
		if err := s.withLines(src+".src", "vm.args.src", drop, head...); err != nil {
			return nil, err
		}
	} else if err := s.withLines(src, "vm.args", drop, head...); err != nil {
		return nil, err
	}
	env["VMARGS_PATH"] = filepath.Join(s.Dir, "vm.args")
	return &Command{Path: filepath.Join(r.Root, "bin", script), Args: []string{"foreground"}, Env: env}, nil
}

// shipment starts a Gleam erlang-shipment with `entrypoint.sh run`.
func shipment(s Spec) (*Command, error) {
	env := map[string]string{}
	if s.Node != "" {
		// entrypoint.sh runs a plain `erl`, which reads ERL_FLAGS.
		env["ERL_FLAGS"] = strings.Join(append(append([]string{"-name " + s.Node}, distFlags(s.DistPort)...), s.extra...), " ")
	}
	return &Command{Path: filepath.Join(s.Release.Root, "entrypoint.sh"), Args: []string{"run"}, Env: env}, nil
}

// distFlags makes a node listen on exactly the port Nomad assigned and
// register it with the driver's port mapper (found through ERL_EPMD_PORT),
// never starting an epmd daemon. Peers look the port up there, so nodes on
// different ports and hosts reach each other. Port 0 means a node that
// neither listens nor registers.
func distFlags(port int) []string {
	if port <= 0 {
		return []string{"-dist_listen false", "-start_epmd false"}
	}
	return []string{
		"-start_epmd false",
		fmt.Sprintf("-kernel inet_dist_listen_min %d", port),
		fmt.Sprintf("-kernel inet_dist_listen_max %d", port),
	}
}

// withLines writes the args file src, a slash path beneath the plugin's
// copy of the release, to name in s.Out, without the lines for which drop
// is true, and with head prepended. A missing src is an empty file.
func (s Spec) withLines(src, name string, drop func(string) bool, head ...string) error {
	data, err := release.ReadIn(s.Tree, src, release.MaxFileSize)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("launch: %w", err)
	}
	var b bytes.Buffer
	b.WriteString("## Written by the beam Nomad driver from " + filepath.Base(src) + "\n")
	for _, l := range head {
		b.WriteString(l + "\n")
	}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if drop != nil && drop(line) {
			continue
		}
		b.WriteString(line + "\n")
	}
	if err := taskdir.WriteFile(s.Out, name, b.Bytes(), 0o600, s.owner); err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	return nil
}

// writeCookieHome writes the node's private HOME, home/ in out, with the
// cookie in home/.erlang.cookie (mode 0400), both owned by the task's user.
// out is a fresh directory, so both are created, never rewritten.
func writeCookieHome(out *os.Root, cookie string, owner taskdir.Owner) error {
	if err := checkCookie(cookie); err != nil {
		return err
	}
	// home is the plugin's until the cookie is in it, so nothing of the
	// task's can be in its way.
	if err := taskdir.Mkdir(out, "home", 0o700, taskdir.Root); err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	if err := taskdir.WriteFile(out, "home/.erlang.cookie", []byte(cookie), 0o400, owner); err != nil {
		return fmt.Errorf("launch: write cookie: %w", err)
	}
	if err := taskdir.ChownDir(out, "home", 0o700, owner); err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	return nil
}
