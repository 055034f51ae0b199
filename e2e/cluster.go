//go:build e2e

// Package e2e runs the beam driver under real Nomad and Consul agents.
//
// One Cluster is started per test binary and shared by its tests: a Consul
// dev agent and a single-node Nomad agent (server and client) with a data
// directory, so that the agent can be restarted and recover its tasks.
// The deployment tests start a second Cluster with more Nomad clients, each
// with a Consul client agent of its own, as on separate machines.
// Everything listens on 127.0.0.1 only.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	consul "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
)

// Cluster is a running Consul and Nomad pair.
type Cluster struct {
	Root       string // repository root
	Dir        string // scratch directory for agent state and logs
	ConsulAddr string // http://127.0.0.1:PORT
	NomadAddr  string // http://127.0.0.1:PORT
	EPMDPort   int    // the beam driver's port mapper

	// ACLs are on in both agents, as in production. These are the
	// management tokens the tests use; the beam driver gets a Consul token
	// that can only read services.
	NomadToken, ConsulToken string
	// NomadAPI and ConsulAPI are clients of the server agents that send
	// these tokens.
	NomadAPI  *nomadapi.Client
	ConsulAPI *consul.Client

	consul, nomad *exec.Cmd
	nomadConfig   string
	stores        *Stores
	clients       []*client // the Nomad clients after the first
	hosts         []*bridgeHost
	ports         agentPorts  // the server agent's
	agent         agentConfig // the server agent's configuration
	// pluginLines are more beam plugin settings for every client.
	pluginLines []string
	forwards    []int // host ports the bridge clients reach on their loopback
	nodes       int   // Nomad clients in all

	// agentToken is the Consul token of the Nomad agents, and
	// consulIdentity their consul block's workload identity settings.
	agentToken, consulIdentity string
}

// Start starts Consul and Nomad with the plugin from Root/bin, and waits
// until the Nomad client reports the beam driver healthy. Its client
// places tasks' ports in 20000–29999: Nomad gives a stopping allocation's
// ports to new ones at once, so a wide range makes a clash rare.
// Its plugin has the source policy of sourceLines: namespaces team-a and
// team-b each fetch from a prefix of their own.
func Start(root, dir string, stores *Stores) (*Cluster, error) {
	return StartClients(root, dir, stores, 1, 20000, 29999, sourceLines()...)
}

// StartClients starts a cluster with n Nomad clients: the first shares its
// agent with the Nomad server and uses the Consul server, each other one
// has its own Consul client agent, data directories, ports, node name and
// plugin data directory. The clients split the dynamic port range lo–hi.
// Each driver runs its own port mapper, on a port of its own, and answers
// only for the nodes it started. A node registers with the port mapper on
// 127.0.0.1 (OTP's erl_epmd always dials it there), so two clients on one
// host cannot share a port; nodes on different clients of this test
// cluster therefore cannot look each other up, which takes a network
// namespace per client.
// pluginLines are more settings for every client's beam plugin.
func StartClients(root, dir string, stores *Stores, n, lo, hi int, pluginLines ...string) (c *Cluster, err error) {
	c, err = start(root, dir, stores, n, 0, lo, hi, nil, pluginLines)
	return c, err
}

// StartBridge starts a cluster whose first client is on the host's
// loopback, as in Start, with n more in network namespaces of their own
// (see bridgeHost), for bridge-mode groups. Inside those, the host's
// loopback ports in forward (a release server's) are reachable too.
func StartBridge(root, dir string, stores *Stores, n, lo, hi int, forward ...int) (*Cluster, error) {
	return start(root, dir, stores, 1, n, lo, hi, forward, nil)
}

func start(root, dir string, stores *Stores, n, bridges, lo, hi int, forward []int, pluginLines []string) (c *Cluster, err error) {
	c = &Cluster{Root: root, Dir: dir, stores: stores, nodes: n, forwards: forward, pluginLines: pluginLines}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	started := c // the results are nil on an error
	defer func() {
		if err != nil {
			started.Stop()
		}
	}()
	ports, err := newAgentPorts()
	if err != nil {
		return nil, err
	}
	c.ports = ports
	span := (hi - lo + 1) / (n + bridges)
	dynamic := func(i int) (int, int) { return lo + i*span, lo + (i+1)*span - 1 }
	c.ConsulAddr = fmt.Sprintf("http://127.0.0.1:%d", ports.ConsulHTTP)
	c.NomadAddr = fmt.Sprintf("http://127.0.0.1:%d", ports.NomadHTTP)

	c.ConsulToken = uuid()
	if c.ConsulAPI, err = newConsulAPI(c.ConsulAddr, c.ConsulToken, agentTimeout); err != nil {
		return nil, err
	}
	// The token comes with Nomad's ACL bootstrap.
	if c.NomadAPI, err = newNomadAPI(c.NomadAddr, ""); err != nil {
		return nil, err
	}
	c.consul = exec.Command(filepath.Join(root, "bin", "consul"), "agent", "-dev", "-node", "consul-1",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(ports.ConsulHTTP), "-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-serf-lan-port", strconv.Itoa(ports.ConsulSerfLAN), "-serf-wan-port", strconv.Itoa(ports.ConsulSerfWAN),
		"-server-port", strconv.Itoa(ports.ConsulServer), "-hcl", "disable_update_check = true",
		"-hcl", fmt.Sprintf(`acl { enabled = true, default_policy = "deny", tokens { initial_management = %q, agent = %q } }`,
			c.ConsulToken, c.ConsulToken))
	if err := c.startLogged(c.consul, "consul.log"); err != nil {
		return nil, err
	}
	if err := waitFor(60*time.Second, func() error {
		leader, err := c.ConsulAPI.Status().Leader()
		if err != nil {
			return err
		}
		if leader == "" {
			return fmt.Errorf("no consul leader yet")
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("consul did not start: %w\n%s", err, c.tail("consul.log"))
	}

	// The driver reads the health of services, and nothing else.
	var readToken string
	err = waitFor(30*time.Second, func() (err error) {
		readToken, err = c.consulReadToken()
		return err
	})
	if err != nil {
		return nil, err
	}

	plugins := filepath.Join(dir, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		return nil, err
	}
	if err := copyFile(filepath.Join(root, "bin", "nomad-driver-beam"), filepath.Join(plugins, "nomad-driver-beam")); err != nil {
		return nil, err
	}
	c.nomadConfig = filepath.Join(dir, "nomad.hcl")
	c.EPMDPort = ports.EPMD
	from, to := dynamic(0)
	// Workload identities for services and tasks, as in production
	// (`nomad setup consul`): tasks reach Consul with their own tokens.
	if err := c.consulAgentToken(); err != nil {
		return nil, err
	}
	c.agent = c.loopbackAgent("client-1", filepath.Join(dir, "nomad"), filepath.Join(dir, "beam"), ports, from, to, readToken)
	c.agent.Server = true
	if err := os.WriteFile(c.nomadConfig, []byte(c.agent.render()), 0o644); err != nil {
		return nil, err
	}
	if err := c.startNomad(); err != nil {
		return nil, err
	}
	if err := c.consulAuthMethod(); err != nil {
		return nil, err
	}
	for i := 1; i < n; i++ {
		from, to := dynamic(i)
		if err := c.addClient(i+1, from, to, readToken); err != nil {
			return nil, err
		}
	}
	if bridges > 0 {
		// One port mapper port for all, as on real clients: a node
		// looks a peer up at the peer's address on its own port.
		epmd, err := freePorts(1)
		if err != nil {
			return nil, err
		}
		for b := 1; b <= bridges; b++ {
			h, err := newBridgeHost(b)
			if err != nil {
				return nil, fmt.Errorf("bridge client %d: %w", b, err)
			}
			from, to := dynamic(n + b - 1)
			if err := c.addBridgeClient(n+b, h, epmd[0], from, to, readToken); err != nil {
				return nil, err
			}
		}
	}
	if err := c.waitNodes(); err != nil {
		return nil, err
	}
	return c, nil
}

// loopbackAgent is the configuration of a Nomad agent on the host's
// loopback with its beam plugin, as every agent but a bridge client's.
func (c *Cluster) loopbackAgent(name, dataDir, beamDir string, p agentPorts, from, to int, readToken string) agentConfig {
	return agentConfig{
		Name: name, DataDir: dataDir, PluginDir: filepath.Join(c.Dir, "plugins"), Ports: p,
		DynamicMin: from, DynamicMax: to,
		Consul: fmt.Sprintf("127.0.0.1:%d", p.ConsulHTTP), ConsulToken: c.agentToken, ConsulIdentity: c.consulIdentity,
		Beam: beamConfig{DataDir: beamDir, EPMDPort: p.EPMD, EPMDAddr: "127.0.0.1",
			ConsulAddr: fmt.Sprintf("127.0.0.1:%d", p.ConsulHTTP), ConsulToken: readToken,
			S3Addr: c.stores.S3Addr, STSAddr: c.stores.stsAddr(), FileRoot: filepath.Join(c.Root, "build", "releases"),
			Lines: c.pluginLines, RawExec: true, SmallUnpackLimit: true},
	}
}

// sourceLines is the main cluster's source policy: the default namespace
// as before (any source), and two teams with a prefix of the S3 bucket
// each. See Start and trust_test.go.
func sourceLines() []string {
	return []string{
		"sources {",
		`  namespace "default" { allow = ["*"] }`,
		fmt.Sprintf(`  namespace "team-a" { allow = ["s3://%s/team-a/"] }`, Bucket),
		fmt.Sprintf(`  namespace "team-b" { allow = ["s3://%s/team-b/"] }`, Bucket),
		"}",
	}
}

// Env is the environment for a CLI to reach this cluster: NOMAD_ADDR,
// NOMAD_TOKEN, CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN.
func (c *Cluster) Env() []string {
	return []string{"NOMAD_ADDR=" + c.NomadAddr, "NOMAD_TOKEN=" + c.NomadToken,
		"CONSUL_HTTP_ADDR=" + strings.TrimPrefix(c.ConsulAddr, "http://"), "CONSUL_HTTP_TOKEN=" + c.ConsulToken}
}

func (c *Cluster) startNomad() error {
	c.nomad = exec.Command(filepath.Join(c.Root, "bin", "nomad"), "agent", "-config", c.nomadConfig)
	c.nomad.Env = append(append(os.Environ(), "AWS_CA_BUNDLE="), c.stores.Env()...)
	if err := c.startLogged(c.nomad, "nomad.log"); err != nil {
		return err
	}
	if c.NomadToken == "" {
		err := waitFor(60*time.Second, func() error {
			out, _, err := c.NomadAPI.ACLTokens().Bootstrap(nil)
			if err != nil {
				return err
			}
			c.NomadToken = out.SecretID
			return nil
		})
		if err != nil {
			return fmt.Errorf("nomad ACL bootstrap: %w\n%s", err, c.tail("nomad.log"))
		}
		c.NomadAPI.SetSecretID(c.NomadToken)
	}
	err := waitFor(90*time.Second, func() error {
		nodes, _, err := c.NomadAPI.Nodes().List(&nomadapi.QueryOptions{Params: map[string]string{"resources": "true"}})
		if err != nil {
			return err
		}
		if len(nodes) == 0 || nodes[0].Status != "ready" {
			return fmt.Errorf("nomad client not ready")
		}
		healthy, err := c.driverHealthy(nodes[0].ID)
		if err != nil {
			return err
		}
		if !healthy {
			return fmt.Errorf("beam driver not healthy yet")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("nomad did not start: %w\n%s", err, c.tail("nomad.log"))
	}
	return nil
}

// RestartNomad stops the Nomad agent and starts it again on the same state.
func (c *Cluster) RestartNomad() error {
	stop(c.nomad, 30*time.Second)
	return c.startNomad()
}

// Stop stops every job, then the agents.
func (c *Cluster) Stop() {
	if c.nomad != nil && c.nomad.Process != nil {
		if jobs, _, err := c.NomadAPI.Jobs().List(nil); err == nil {
			for _, j := range jobs {
				_, _ = c.Nomad("job", "stop", "-purge", j.ID)
			}
		}
		for _, cl := range c.clients {
			stop(cl.nomad, 30*time.Second)
		}
		stop(c.nomad, 30*time.Second)
	}
	for _, cl := range c.clients {
		stop(cl.consul, 15*time.Second)
	}
	if c.consul != nil && c.consul.Process != nil {
		stop(c.consul, 15*time.Second)
	}
	killUnder(c.Dir)
	for _, h := range c.hosts {
		h.remove()
	}
}

// Nomad runs the nomad CLI against the cluster.
func (c *Cluster) Nomad(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.Root, "bin", "nomad"), args...)
	cmd.Env = append(os.Environ(), "NOMAD_ADDR="+c.NomadAddr, "NOMAD_TOKEN="+c.NomadToken)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("nomad %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), nil
}

func (c *Cluster) startLogged(cmd *exec.Cmd, name string) error {
	f, err := os.OpenFile(filepath.Join(c.Dir, name), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = f, f
	// Own process group, so that nothing the agent starts outlives a stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	go func() { _ = cmd.Wait(); f.Close() }()
	return nil
}

// tail returns the end of a log file in Dir, for error messages.
func (c *Cluster) tail(name string) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, name))
	if len(b) > 6000 {
		b = b[len(b)-6000:]
	}
	return string(b)
}

// stop sends SIGINT and waits up to grace before SIGKILL.
func stop(cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGINT)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if cmd.ProcessState != nil || syscall.Kill(cmd.Process.Pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
}

// killUnder kills every process whose working directory or executable lies
// under dir: executors and nodes that a test left behind.
func killUnder(dir string) {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		pid, _ := strconv.Atoi(filepath.Base(p))
		if pid == os.Getpid() {
			continue
		}
		cwd, _ := os.Readlink(p + "/cwd")
		exe, _ := os.Readlink(p + "/exe")
		if under(cwd, dir) || under(exe, dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// under says whether path is dir or lies below it.
func under(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// permanent marks an error that waiting longer cannot fix.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// waitFor calls f until it returns nil, a permanent error, or timeout
// passes, and returns the last error.
func waitFor(timeout time.Duration, f func() error) error {
	return waitEvery(200*time.Millisecond, timeout, f)
}

// waitEvery is waitFor polling every poll.
func waitEvery(poll, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(poll)
	}
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}
