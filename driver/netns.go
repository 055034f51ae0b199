package driver

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"

	"github.com/hashicorp/nomad/plugins/drivers"
	"golang.org/x/sys/unix"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/epmd"
)

// bridged reports whether the task runs in its group's own network
// namespace (network mode "bridge", or "cni/..."), where loopback is the
// namespace's and Nomad maps host ports to ports inside.
func bridged(cfg *drivers.TaskConfig) bool {
	n := cfg.NetworkIsolation
	return n != nil && n.Mode == drivers.NetIsolationModeGroup && n.Path != ""
}

// listenInNamespace opens a TCP listener on addr inside the network
// namespace at path (one Nomad made for the allocation). A socket stays in
// the namespace it was made in, so the plugin serves it like any other.
func listenInNamespace(path, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread returns to the pool only once it is back in the
		// plugin's namespace; if it cannot get back, it ends with this
		// goroutine.
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer own.Close()
		ns, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("enter network namespace %s: %w", path, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		if berr := unix.Setns(int(own.Fd()), unix.CLONE_NEWNET); berr != nil {
			if ln != nil {
				ln.Close()
			}
			ch <- result{nil, fmt.Errorf("leave network namespace %s: %w", path, berr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{ln, err}
	}()
	r := <-ch
	return r.ln, r.err
}

// startLocalMapper answers the node's own port mapper requests inside its
// group's namespace: its registration at boot, and lookups of its name by
// calls made in the task. The client's port mapper answers peers outside
// with the host port.
func (d *Driver) startLocalMapper(cfg *drivers.TaskConfig, node string, inside int) error {
	if !bridged(cfg) || node == "" {
		return nil
	}
	pcfg, _ := d.cfg()
	ln, err := listenInNamespace(cfg.NetworkIsolation.Path, net.JoinHostPort("127.0.0.1", strconv.Itoa(pcfg.EPMDPort)))
	if err != nil {
		return fmt.Errorf("cannot start the port mapper in the group's network namespace: %w", err)
	}
	l := epmd.ServeLocal(ln, shortName(node), inside)
	d.epmdMu.Lock()
	old := d.locals[cfg.ID]
	d.locals[cfg.ID] = l
	d.epmdMu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (d *Driver) stopLocalMapper(taskID string) {
	d.epmdMu.Lock()
	l := d.locals[taskID]
	delete(d.locals, taskID)
	d.epmdMu.Unlock()
	if l != nil {
		l.Close()
	}
}
