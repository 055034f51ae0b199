package driver

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/epmd"
)

// portMapper returns the port that nodes use to register and look each other
// up, starting the driver's own port mapper on first use. If the port is
// taken by an epmd that the host runs (as a system service, outside any
// task), the driver uses that one instead.
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
	if isEPMD(cfg.EPMDPort) {
		d.epmdHost = true
		d.logger.Info("using the host's epmd", "port", cfg.EPMDPort)
		return cfg.EPMDPort, nil
	}
	return 0, fmt.Errorf("cannot start the port mapper on %s (%v), and what listens there is not an epmd; "+
		"free the port or set epmd_port in the plugin config", addr, err)
}

// registerNode records a node the driver runs with its port mapper, so that
// peers find it even after a plugin restart.
func (d *Driver) registerNode(node string, port int) {
	d.epmdMu.Lock()
	defer d.epmdMu.Unlock()
	if d.epmd != nil && node != "" && port > 0 {
		d.epmd.Set(shortName(node), port)
	}
}

func (d *Driver) unregisterNode(node string) {
	d.epmdMu.Lock()
	defer d.epmdMu.Unlock()
	if d.epmd != nil && node != "" {
		d.epmd.Remove(shortName(node))
	}
}

func shortName(node string) string {
	name, _, _ := strings.Cut(node, "@")
	return name
}

// isEPMD reports whether an epmd answers a NAMES request on the local port.
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
	var p uint32
	if err := binary.Read(c, binary.BigEndian, &p); err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, c)
	return int(p) == port
}
