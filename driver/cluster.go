package driver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"
	"github.com/hashicorp/nomad/plugins/drivers"
	"golang.org/x/sys/unix"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/epmd"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/peers"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
)

// cluster keeps the node connected to the healthy instances of a Consul
// service, normally the job's own distribution-port service, that Nomad
// vouches for. It follows the service with blocking queries, so new
// instances are joined at once; an instance that stops is dropped by the
// VM itself when its connection closes. It runs until ctx ends.
//
// Consul is not trusted: whoever may write the service name can register
// any address there. An instance is dialed only when its address and port
// are the dist port of a running allocation of this task's job, in its
// namespace, as the Nomad API tells the task's workload identity (see
// package peers). What cannot be verified is refused.
func (d *Driver) cluster(ctx context.Context, h *taskHandle, service string) {
	cfg := h.taskConfig
	ns := cfg.Namespace
	if ns == "" {
		ns = "default"
	}
	logger := h.logger.With("cluster_service", service)
	var tc TaskConfig
	if err := cfg.DecodeDriverConfig(&tc); err != nil || tc.DistPort == "" {
		logger.Error("clustering off: no dist_port in the task config", "error", err)
		return
	}
	client, err := d.consulClient(cfg)
	if err != nil {
		logger.Error("clustering off: no Consul client", "error", err)
		return
	}
	ctl, err := d.controlClient(h, &h.state)
	if err != nil {
		logger.Error("clustering off", "error", err)
		return
	}
	if readTaskToken(cfg) == "" {
		d.event(cfg, "Clustering is off: the task has no workload identity token to verify its peers with Nomad; "+
			"add identity { file = true } to the task, then %s", policyHint(cfg))
		return
	}
	lister, err := newTaskAPILister(cfg)
	if err != nil {
		d.event(cfg, "Clustering is off: cannot reach the Task API to verify peers: %v", err)
		return
	}
	pcfg, _ := d.cfg()
	verifier := &peers.Verifier{Lister: lister, Namespace: ns, JobID: cfg.JobID, Label: tc.DistPort,
		MinAge: time.Second, MaxAge: 10 * time.Second}
	resolver := &peers.Resolver{
		Port: func(host netip.Addr, name string) (int, error) {
			return epmd.PortPlease(netip.AddrPortFrom(host, uint16(pcfg.EPMDPort)).String(), name, 2*time.Second)
		},
		// The name the peer's driver reported, so that a node_name that
		// differs per allocation (app-${NOMAD_ALLOC_INDEX}) still
		// resolves; else the one this task's config would give it.
		NameOf: func(allocID string) string {
			if n := verifier.NodeName(allocID); n != "" {
				return n
			}
			return shortNodeName(cfg.JobName, allocID, tc.NodeName)
		},
	}
	warned, events := &peers.Seen{Max: 1024}, 0
	var index uint64
	var last string
	failing, denied := false, false
	for ctx.Err() == nil {
		entries, meta, err := client.Health().Service(service, "", true,
			(&consul.QueryOptions{WaitIndex: index, WaitTime: 10 * time.Second}).WithContext(ctx))
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("cannot list cluster peers from Consul", "error", err)
				if !failing {
					// Once per outage, so that events stay readable.
					d.event(cfg, "Clustering: cannot list service %q from Consul (%v); check the plugin's consul_address, "+
						"and give the task a Consul token that may read the service: a consul {} block in the task, "+
						"with task_identity in the client's consul block", service, err)
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
		set, err := verifier.Peers(ctx, index)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, peers.ErrDenied) {
				logger.Debug("Nomad refuses to list the job's allocations", "error", err)
				if !denied {
					// Once per refusal: a policy attached later takes
					// effect without a restart.
					d.event(cfg, "Clustering is off: Nomad refused to list the allocations of job %q to the task's "+
						"workload identity, so peers found in Consul cannot be verified; %s", cfg.JobID, policyHint(cfg))
					denied = true
				}
				sleep(ctx, 30*time.Second)
				continue
			}
			logger.Warn("cannot verify cluster peers with Nomad", "error", err)
			sleep(ctx, 2*time.Second)
			continue
		}
		if denied {
			logger.Info("Nomad lists the job's allocations again: clustering on")
			denied = false
		}
		accepted, refused := peers.Filter(entries, set)
		for _, r := range refused {
			msg := fmt.Sprintf("refusing cluster peer %s: not an allocation of job %s in namespace %s", r, cfg.JobID, ns)
			logger.Debug(msg, "service_id", r.ServiceID)
			if warned.First(r.ServiceID + " " + r.String()) {
				logger.Warn(msg, "service_id", r.ServiceID)
				// The first few in the task's events too: Nomad keeps only
				// the last ten, which a flood of fake instances must not
				// push out.
				if events < maxPeerEvents {
					events++
					d.event(h.taskConfig, "Clustering: %s of service %q; it is not dialled", msg, service)
				}
			}
		}
		nodes, skipped := resolver.Resolve(accepted, set, cfg.AllocID)
		for _, s := range skipped {
			logger.Debug("skipping cluster peer", "peer", s.Peer.Addr.String(), "alloc_id", s.Peer.AllocID, "reason", s.Reason)
		}
		if len(nodes) == 0 {
			sleep(ctx, time.Second)
			continue
		}
		peers := make(eterm.List, len(nodes))
		for i, p := range nodes {
			peers[i] = eterm.Atom(p)
		}
		out, err := ctl.Eval(ctx, "[{P, net_kernel:connect_node(P)} || P <- "+eterm.Format(peers)+", not lists:member(P, nodes())]")
		if err != nil {
			logger.Warn("cannot connect the node to its peers", "error", err.Error())
			sleep(ctx, time.Second)
			continue
		}
		if key := strings.Join(nodes, ","); key != last {
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

// policyHint tells how to let the task's identity list its job's
// allocations: the minimal policy and the command that attaches it.
func policyHint(cfg *drivers.TaskConfig) string {
	return fmt.Sprintf("attach this policy to the task's workload identity: %s with beam-cluster.hcl holding %s",
		peers.PolicyCommand(cfg.Namespace, cfg.JobID, cfg.TaskGroupName, cfg.Name, "beam-cluster.hcl"),
		strings.Join(strings.Fields(peers.Policy(cfg.Namespace)), " "))
}

// maxPeerEvents is how many refused cluster peers a task's events name.
const maxPeerEvents = 3

// maxTaskFile bounds what the driver reads from a task's directory.
const maxTaskFile = 64 << 10

// readTaskFile reads a small regular file at rel inside the task
// directory. It goes through an os.Root, so no link (the task owns the
// directory, the driver runs as root) can lead it outside; it opens
// without blocking, so a FIFO cannot hang it; and it reads at most
// maxTaskFile bytes.
func readTaskFile(cfg *drivers.TaskConfig, rel string) ([]byte, error) {
	td, err := taskdir.Open(cfg.TaskDir().Dir)
	if err != nil {
		return nil, err
	}
	defer td.Close()
	return td.ReadFile(rel, maxTaskFile)
}

// readTaskToken returns the task's workload identity token: from
// secrets/nomad_token (identity { file = true }), read anew each time
// since Nomad renews it, else NOMAD_TOKEN in its environment
// (identity { env = true }).
func readTaskToken(cfg *drivers.TaskConfig) string {
	if b, err := readTaskFile(cfg, filepath.Join("secrets", "nomad_token")); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t
		}
	}
	return strings.TrimSpace(cfg.Env["NOMAD_TOKEN"])
}

// taskAPIClient returns a Nomad client on the task's Task API socket,
// secrets/api.sock. Each connection first checks, through an os.Root,
// that the socket is one and not a link the task planted to point the
// driver at another socket on the host.
// Timeout bounds each request; zero means none, for blocking queries that
// their context bounds.
func taskAPIClient(cfg *drivers.TaskConfig, timeout time.Duration) (*nomad.Client, error) {
	dir := cfg.TaskDir().Dir
	rel := filepath.Join("secrets", "api.sock")
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return dialTaskSocket(ctx, dir, "secrets", "api.sock")
	}
	return nomad.NewClient(&nomad.Config{
		Address:    "unix://" + filepath.Join(dir, rel),
		Namespace:  cfg.Namespace,
		HttpClient: &http.Client{Transport: &http.Transport{DialContext: dial}, Timeout: timeout},
	})
}

// taskAPILister reads the task's job's allocations through the Task API,
// as the task's workload identity.
type taskAPILister struct {
	cfg    *drivers.TaskConfig
	client *nomad.Client
}

func newTaskAPILister(cfg *drivers.TaskConfig) (*taskAPILister, error) {
	c, err := taskAPIClient(cfg, time.Minute)
	if err != nil {
		return nil, err
	}
	return &taskAPILister{cfg: cfg, client: c}, nil
}

func (l *taskAPILister) query(ctx context.Context, namespace string) *nomad.QueryOptions {
	return (&nomad.QueryOptions{Namespace: namespace, AuthToken: readTaskToken(l.cfg)}).WithContext(ctx)
}

// JobAllocs lists the job's allocations (read-job).
func (l *taskAPILister) JobAllocs(ctx context.Context, namespace, jobID string) ([]*nomad.AllocationListStub, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, _, err := l.client.Jobs().Allocations(jobID, false, l.query(ctx, namespace))
	return out, nomadError(err)
}

// Alloc reads one allocation with its ports (read-job).
func (l *taskAPILister) Alloc(ctx context.Context, namespace, id string) (*nomad.Allocation, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, _, err := l.client.Allocations().Info(id, l.query(ctx, namespace))
	return out, nomadError(err)
}

// nomadError marks Nomad's ACL refusals with peers.ErrDenied.
func nomadError(err error) error {
	var status interface{ StatusCode() int }
	if errors.As(err, &status) && status.StatusCode() == http.StatusForbidden {
		return fmt.Errorf("%w: %v", peers.ErrDenied, err)
	}
	return err
}

// consulClient returns a Consul client for the task's clustering. The
// token is the task's own, which Nomad writes to secrets/consul_token from
// its Consul workload identity, or none: never the plugin's consul_token
// nor CONSUL_HTTP_TOKEN, which would let a job list any service name the
// plugin's token may read. Without ACLs no token is needed.
func (d *Driver) consulClient(cfg *drivers.TaskConfig) (*consul.Client, error) {
	pcfg, _ := d.cfg()
	cc := consul.DefaultConfig()
	if pcfg.ConsulAddress != "" {
		cc.Address = pcfg.ConsulAddress
	}
	cc.Token, cc.TokenFile = "", ""
	if b, err := readTaskFile(cfg, filepath.Join("secrets", "consul_token")); err == nil && len(strings.TrimSpace(string(b))) > 0 {
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

// dialTaskSocket connects to the unix socket name in the directory sub of
// the task directory dir. The socket is opened first, through an os.Root
// on the task directory and without following a final link, and the
// connection goes to that open file: the task cannot swap in a link to
// another socket of the host between a check and the dial.
func dialTaskSocket(ctx context.Context, dir, sub, name string) (net.Conn, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	parent, err := taskdir.OpenFile(root, filepath.ToSlash(sub), os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", sub, name, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%s/%s is not a socket", sub, name)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", "/proc/self/fd/"+strconv.Itoa(fd))
	if err != nil {
		return nil, err
	}
	// The task's user may replace the socket with one of its own that
	// serves a fake API: only the Nomad agent's, which runs as root, is
	// answered.
	if uid, err := peerUID(c); err != nil || uid != os.Geteuid() {
		c.Close()
		return nil, fmt.Errorf("%s/%s is not served by the Nomad agent (peer uid %d, %v)", sub, name, uid, err)
	}
	return c, nil
}

// peerUID returns the uid of the process at the other end of a unix
// socket connection.
func peerUID(c net.Conn) (int, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return -1, errors.New("not a unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}
