package driver

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/control"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/epmd"
)

// controlClient returns the channel into the task's node.
func (d *Driver) controlClient(st *taskState) (*control.Client, error) {
	if st.Node == "" {
		return nil, fmt.Errorf("distribution is off for this task (no dist_port)")
	}
	cfg, _ := d.cfg()
	erlCall := filepath.Join(st.ReleaseRoot, "erts-"+st.ERTS, "bin", "erl_call")
	if _, err := os.Stat(erlCall); err != nil {
		p, lerr := lookPathNear(d.host.probe(d.ctx).Path, "erl_call")
		if lerr != nil {
			return nil, fmt.Errorf("no erl_call in the release's erts nor on the host")
		}
		erlCall = p
	}
	c := &control.Client{
		ERLCall: erlCall,
		Node:    st.Node,
		Env:     []string{"HOME=" + st.Home, "ERL_EPMD_PORT=" + strconv.Itoa(cfg.EPMDPort), "PATH=" + os.Getenv("PATH")},
		Dir:     st.Home,
		Timeout: 10 * time.Second,
	}
	if st.SSLDistOptFile != "" {
		c.SSLDistOptFile = st.SSLDistOptFile
		c.ERL = filepath.Join(filepath.Dir(erlCall), "erl")
		lib := filepath.Join(st.ReleaseRoot, "lib")
		c.VMArgs = []string{
			"-boot", filepath.Join(st.ReleaseRoot, "releases", st.ReleaseVersion, "start_clean"),
			"-boot_var", "RELEASE_LIB", lib, "-boot_var", "SYSTEM_LIB_DIR", lib,
			"-pa",
		}
		ebins, _ := filepath.Glob(filepath.Join(lib, "*", "ebin"))
		c.VMArgs = append(c.VMArgs, ebins...)
	}
	return c, nil
}

// lookPathNear finds a program next to the host's erl, where OTP installs
// erl_call under lib/erl_interface-*/bin when not in bin/.
func lookPathNear(erl, prog string) (string, error) {
	if erl == "" {
		return "", os.ErrNotExist
	}
	real, err := filepath.EvalSymlinks(erl)
	if err != nil {
		return "", err
	}
	root := filepath.Dir(filepath.Dir(real))
	for _, pattern := range []string{
		filepath.Join(filepath.Dir(real), prog),
		filepath.Join(root, "erts-*", "bin", prog),
		filepath.Join(root, "lib", "erl_interface-*", "bin", prog),
	} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			return m[len(m)-1], nil
		}
	}
	return "", os.ErrNotExist
}

// cluster keeps the node connected to every healthy instance of a Consul
// service, normally the job's own distribution-port service. It follows the
// service with blocking queries, so new instances are joined at once; an
// instance that stops is dropped by the VM itself when its connection
// closes. It runs until ctx ends.
func (d *Driver) cluster(ctx context.Context, h *taskHandle, service string) {
	logger := h.logger.With("cluster_service", service)
	client, err := d.consulClient(h.taskConfig.TaskDir().SecretsDir)
	if err != nil {
		logger.Error("clustering off: no Consul client", "error", err)
		return
	}
	ctl, err := d.controlClient(&h.state)
	if err != nil {
		logger.Error("clustering off", "error", err)
		return
	}
	cfg, _ := d.cfg()
	var index uint64
	var last string
	failing := false
	for ctx.Err() == nil {
		entries, meta, err := client.Health().Service(service, "", true,
			(&consul.QueryOptions{WaitIndex: index, WaitTime: 10 * time.Second}).WithContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("cannot list cluster peers from Consul", "error", err)
				if !failing {
					// Once per outage, so that events stay readable.
					d.event(h.taskConfig, "Clustering: cannot list service %q from Consul (%v); "+
						"check consul_address and the Consul token in the plugin config", service, err)
					failing = true
				}
				sleep(ctx, 2*time.Second)
			}
			index = 0
			continue
		}
		failing = false
		if meta.LastIndex < index {
			index = 0 // Consul's index went backwards: start over
		} else {
			index = meta.LastIndex
		}
		peers := resolvePeers(entries, cfg.EPMDPort, h.state.Node)
		if len(peers) == 0 {
			continue
		}
		quoted := make([]string, len(peers))
		for i, p := range peers {
			quoted[i] = "'" + p + "'"
		}
		out, err := ctl.Eval(ctx, "[{P, net_kernel:connect_node(P)} || P <- ["+strings.Join(quoted, ",")+"], not lists:member(P, nodes())]")
		if err != nil {
			logger.Warn("cannot connect the node to its peers", "error", err.Error())
			sleep(ctx, time.Second)
			continue
		}
		if key := strings.Join(peers, ","); key != last {
			logger.Info("cluster peers", "peers", key, "result", out)
			last = key
		}
		// Reconnect now and then even without a change in Consul, in case
		// a connection failed while both ends stayed healthy.
		if index > 0 {
			sleep(ctx, time.Second)
		}
	}
}

// resolvePeers turns Consul entries of a distribution-port service into
// node names, asking each host's port mapper which node listens on the
// registered port.
func resolvePeers(entries []*consul.ServiceEntry, epmdPort int, self string) []string {
	names := map[string]map[int]string{}
	var peers []string
	for _, e := range entries {
		addr := e.Service.Address
		if addr == "" {
			addr = e.Node.Address
		}
		byPort, ok := names[addr]
		if !ok {
			byPort, _ = epmd.Names(net.JoinHostPort(addr, strconv.Itoa(epmdPort)), 2*time.Second)
			names[addr] = byPort
		}
		if net.ParseIP(addr) == nil && !epmd.ValidName(addr) {
			continue // not an address we can put in a node name
		}
		if name, ok := byPort[e.Service.Port]; ok && epmd.ValidName(name) {
			if node := name + "@" + addr; node != self {
				peers = append(peers, node)
			}
		}
	}
	sort.Strings(peers)
	return peers
}

// consulClient returns a Consul client. The token is the task's own
// (workload identity writes it to secrets/consul_token), else the plugin's
// consul_token, else CONSUL_HTTP_TOKEN from the environment.
func (d *Driver) consulClient(secretsDir string) (*consul.Client, error) {
	pcfg, _ := d.cfg()
	cc := consul.DefaultConfig()
	if pcfg.ConsulAddress != "" {
		cc.Address = pcfg.ConsulAddress
	}
	if pcfg.ConsulToken != "" {
		cc.Token = pcfg.ConsulToken
	}
	if b, err := os.ReadFile(filepath.Join(secretsDir, "consul_token")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		cc.Token = strings.TrimSpace(string(b))
	}
	return consul.NewClient(cc)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
