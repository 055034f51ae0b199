//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A bridge client is a Nomad client in a network namespace that the test
// makes, with an address of its own (10.201.N.2, a veth pair to the host's
// 10.201.N.1), as on a machine of its own: inside a bridge-mode group,
// 127.0.0.1 is the group's own loopback, so the clients of the other tests,
// all on the host's loopback, cannot show distribution between groups. The
// host routes between the namespaces. Inside each, forwarders on 127.0.0.1
// lead to the Nomad server's RPC port, the Consul server's HTTP port and
// the release server, which the agents and the driver find there as on the
// host.
type bridgeHost struct {
	ns             string // the network namespace's name, in /var/run/netns
	hostIF, nsIF   string
	hostIP, nsIP   string
	subnet, bridge string // the client's bridge_network_subnet and _name

	mu  sync.Mutex
	lns []net.Listener
}

// runCmd runs a command and returns its error with its output.
func runCmd(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// newBridgeHost makes namespace number i (1–9) with its veth pair.
func newBridgeHost(i int) (*bridgeHost, error) {
	h := &bridgeHost{
		ns:     fmt.Sprintf("beam-e2e-%d", i),
		hostIF: fmt.Sprintf("vbeam%dh", i), nsIF: fmt.Sprintf("vbeam%dn", i),
		hostIP: fmt.Sprintf("10.201.%d.1", i), nsIP: fmt.Sprintf("10.201.%d.2", i),
		subnet: fmt.Sprintf("172.27.%d.0/24", i), bridge: fmt.Sprintf("beambr%d", i),
	}
	h.remove() // what a killed run left
	steps := [][]string{
		{"ip", "netns", "add", h.ns},
		{"ip", "link", "add", h.hostIF, "type", "veth", "peer", "name", h.nsIF, "netns", h.ns},
		{"ip", "addr", "add", h.hostIP + "/24", "dev", h.hostIF},
		{"ip", "link", "set", h.hostIF, "up"},
		{"ip", "-n", h.ns, "addr", "add", h.nsIP + "/24", "dev", h.nsIF},
		{"ip", "-n", h.ns, "link", "set", h.nsIF, "up"},
		{"ip", "-n", h.ns, "link", "set", "lo", "up"},
		{"ip", "-n", h.ns, "route", "add", "default", "via", h.hostIP},
		{"ip", "netns", "exec", h.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		// The host forwards between the namespaces, whatever the policy
		// of its FORWARD chain (Docker sets it to DROP).
		{"iptables", "-I", "FORWARD", "-i", h.hostIF, "-j", "ACCEPT"},
		{"iptables", "-I", "FORWARD", "-o", h.hostIF, "-j", "ACCEPT"},
	}
	if err := runCmd("sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return nil, err
	}
	for _, s := range steps {
		if err := runCmd(s[0], s[1:]...); err != nil {
			h.remove()
			return nil, err
		}
	}
	return h, nil
}

// remove undoes newBridgeHost.
func (h *bridgeHost) remove() {
	h.mu.Lock()
	for _, ln := range h.lns {
		ln.Close()
	}
	h.lns = nil
	h.mu.Unlock()
	_ = runCmd("iptables", "-D", "FORWARD", "-i", h.hostIF, "-j", "ACCEPT")
	_ = runCmd("iptables", "-D", "FORWARD", "-o", h.hostIF, "-j", "ACCEPT")
	_ = runCmd("ip", "link", "del", h.hostIF)
	_ = runCmd("ip", "netns", "del", h.ns)
}

// forward listens on 127.0.0.1:port inside the namespace and relays each
// connection to the same port on the host's loopback.
func (h *bridgeHost) forward(port int) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := listenIn(filepath.Join("/var/run/netns", h.ns), addr)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.lns = append(h.lns, ln)
	h.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return nil
}

// listenIn opens a listener inside the network namespace at path: the
// socket stays there, whatever thread serves it later.
func listenIn(path, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		ns, err := os.Open(path)
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns %s: %w", path, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// addBridgeClient starts Nomad client number i in its own namespace h.
func (c *Cluster) addBridgeClient(i int, h *bridgeHost, epmd, from, to int, readToken string) error {
	for _, p := range append([]int{c.ports.NomadRPC, c.ports.ConsulHTTP}, c.forwards...) {
		if err := h.forward(p); err != nil {
			return err
		}
	}
	name := fmt.Sprintf("client-%d", i)
	dataDir := filepath.Join(c.Dir, fmt.Sprintf("nomad-%d", i))
	if err := os.MkdirAll(dataDir, 0o711); err != nil {
		return err
	}
	// Its agent listens on the namespace's address, on ports of its own;
	// the server's RPC port and Consul are on its loopback, through the
	// forwarders.
	own, err := newAgentPorts()
	if err != nil {
		return err
	}
	consul := fmt.Sprintf("127.0.0.1:%d", c.ports.ConsulHTTP)
	a := agentConfig{
		Name: name, DataDir: dataDir, PluginDir: filepath.Join(c.Dir, "plugins"), Ports: own,
		Server: false, Servers: []string{fmt.Sprintf("127.0.0.1:%d", c.ports.NomadRPC)},
		Bind: "0.0.0.0", Advertise: h.nsIP, NetworkInterface: h.nsIF, NodeClass: "bridge",
		CNI: true, BridgeName: h.bridge, BridgeSubnet: h.subnet, CgroupParent: fmt.Sprintf("nomad-client-%d.slice", i),
		DynamicMin: from, DynamicMax: to,
		Consul: consul, ConsulToken: c.agentToken, ConsulIdentity: c.consulIdentity,
		Beam: beamConfig{DataDir: filepath.Join(c.Dir, fmt.Sprintf("beam-%d", i)), EPMDPort: epmd,
			ConsulAddr: consul, ConsulToken: readToken},
	}
	cfg := a.render()
	config := filepath.Join(c.Dir, fmt.Sprintf("nomad-%d.hcl", i))
	if err := os.WriteFile(config, []byte(cfg), 0o644); err != nil {
		return err
	}
	cl := &client{name: name}
	cl.nomad = exec.Command("ip", "netns", "exec", h.ns, filepath.Join(c.Root, "bin", "nomad"), "agent", "-config", config)
	cl.nomad.Env = os.Environ()
	c.clients = append(c.clients, cl)
	c.hosts = append(c.hosts, h)
	c.nodes++
	return c.startLogged(cl.nomad, fmt.Sprintf("nomad-%d.log", i))
}
