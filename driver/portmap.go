package driver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/epmd"
)

// portMapper returns the port that nodes use to register and look each other
// up, starting the driver's own port mapper on first use. If the port is
// taken, that is an error, unless epmd_use_host allows using an epmd that
// the host runs there (as a system service, outside any task).
func (d *Driver) portMapper() (int, error) {
	cfg, _ := d.cfg()
	d.epmdMu.Lock()
	defer d.epmdMu.Unlock()
	if d.epmd != nil || d.epmdHost {
		return cfg.EPMDPort, nil
	}
	addr := net.JoinHostPort(cfg.EPMDAddr, strconv.Itoa(cfg.EPMDPort))
	srv, err := epmd.Listen(addr, d.logger.Named("epmd"))
	if err == nil {
		d.epmd = srv
		d.logger.Info("port mapper listening", "addr", addr)
		return cfg.EPMDPort, nil
	}
	if !cfg.EPMDUseHost && !errors.Is(err, syscall.EADDRINUSE) {
		return 0, fmt.Errorf("cannot start the port mapper on %s (epmd_port = %d): %w", addr, cfg.EPMDPort, err)
	}
	if !cfg.EPMDUseHost {
		return 0, fmt.Errorf("cannot start the port mapper on %s: epmd_port %d is taken (%v). "+
			"Usually the host's epmd holds the port; on Debian and Ubuntu, socket activation "+
			"starts it: run \"systemctl disable --now epmd.socket\". Otherwise free the port, "+
			"set another epmd_port on every client, or set epmd_use_host = true to use the "+
			"host's epmd, which lets any local process take a node's name", addr, cfg.EPMDPort, err)
	}
	if !isEPMD(cfg.EPMDPort) {
		return 0, fmt.Errorf("cannot start the port mapper on %s (%v), and what listens there is not an epmd; "+
			"free the port or set epmd_port in the plugin config", addr, err)
	}
	d.epmdHost = true
	d.logger.Warn("using the host's epmd (epmd_use_host = true): it gives a node's name to any local "+
		"process that registers it first, so there is no protection against squatting", "port", cfg.EPMDPort)
	return cfg.EPMDPort, nil
}

// registerNode records a node the driver runs with its port mapper, so that
// peers find it even after a plugin restart. Only a recorded node may
// register its name, so call it before the node starts.
func (d *Driver) registerNode(node string, port int, owner string) error {
	d.epmdMu.Lock()
	defer d.epmdMu.Unlock()
	if d.epmd != nil && node != "" && port > 0 {
		if err := d.epmd.Set(shortName(node), port, owner); err != nil {
			return fmt.Errorf("%v; set another node_name", err)
		}
	}
	return nil
}

func (d *Driver) unregisterNode(node, owner string) {
	d.epmdMu.Lock()
	defer d.epmdMu.Unlock()
	if d.epmd != nil && node != "" {
		d.epmd.Remove(shortName(node), owner)
	}
}

// nodeOwner names the task that runs a node, across its restarts and the
// plugin's.
func nodeOwner(cfg *drivers.TaskConfig) string { return cfg.AllocID + "/" + cfg.Name }

func shortName(node string) string {
	name, _, _ := strings.Cut(node, "@")
	return name
}

// isEPMD reports whether an epmd answers a NAMES request on the local port.
// It reads only the reply's first 4 bytes, the port.
func isEPMD(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte{0, 1, 110}); err != nil {
		return false
	}
	var p [4]byte
	if _, err := io.ReadFull(c, p[:]); err != nil {
		return false
	}
	return int(binary.BigEndian.Uint32(p[:])) == port
}
