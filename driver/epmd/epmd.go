// Package epmd is a port mapper for Erlang distribution that the driver runs
// itself, one per Nomad client, instead of the epmd daemon.
//
// Why: every node listens on the distribution port that Nomad assigned to
// its allocation, so two nodes on one host, or on two hosts, listen on
// different ports. A node finds a peer's port by asking the port mapper on
// the peer's host. The stock epmd would do, but a node that starts it
// daemonizes it out of the task's process tree, where it outlives the task.
// The `-erl_epmd_port P` shortcut avoids epmd but makes a node dial P on
// every peer, which only works if all peers share one port.
//
// So the driver answers the epmd protocol (the parts nodes and client tools
// use: ALIVE2, PORT_PLEASE2 and NAMES) from a table of the nodes it starts
// (Set, Remove), which it fills before it launches a node and again after
// the plugin restarts.
//
// The table is authoritative, so that no other process on the host can
// squat on a node's name: the stock epmd hands a name to whoever registers
// it first, and peers would then dial the squatter with cookie digests.
// PORT_PLEASE2 and NAMES answer from the table only. ALIVE2 is accepted
// only from this host, and only for a name in the table with the port the
// table holds; for such a name it always succeeds, replacing (and closing)
// an earlier registration, so a squatter cannot keep the node from
// starting. Every other ALIVE2 is refused and logged. A registration
// connection stays open for the node's life, as with epmd, and is closed
// when the node is removed from the table.
//
// Every other connection has a cap on its number, its request size and
// the time it may take.
package epmd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// limits bound what a connection may cost.
type limits struct {
	maxConns     int           // connections waiting for or answering a request
	readTimeout  time.Duration // to receive the request
	writeTimeout time.Duration // for each reply
}

var defaultLimits = limits{maxConns: 256, readTimeout: 5 * time.Second, writeTimeout: 5 * time.Second}

// registration is a node's live ALIVE2 connection.
type registration struct {
	c    net.Conn
	port int
}

// Server answers the epmd protocol.
type Server struct {
	ln     net.Listener
	logger hclog.Logger
	lim    limits
	slots  chan struct{} // one per connection that has not registered

	mu       sync.Mutex
	known    map[string]Entry         // nodes the driver started
	owners   map[string]string        // the task that runs each known node
	regs     map[string]*registration // their live registrations
	creation uint32
	closed   bool
	warns    warnLimiter
}

// Listen starts a port mapper on addr, such as "0.0.0.0:4369".
func Listen(addr string, logger hclog.Logger) (*Server, error) {
	return listen(addr, logger, defaultLimits)
}

func listen(addr string, logger hclog.Logger, lim limits) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		ln:       ln,
		logger:   logger,
		lim:      lim,
		slots:    make(chan struct{}, lim.maxConns),
		known:    map[string]Entry{},
		owners:   map[string]string{},
		regs:     map[string]*registration{},
		creation: uint32(time.Now().Unix()),
	}
	go s.serve()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server. Nodes keep running; they only lose their
// registration connection.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	regs := s.regs
	s.regs = map[string]*registration{}
	s.mu.Unlock()
	err := s.ln.Close()
	for _, r := range regs {
		_ = r.c.Close()
	}
	return err
}

// ErrTaken is returned by Set for a name that another owner holds.
var ErrTaken = errors.New("node name taken")

// Set records a node the driver runs, by its short name (before @), for
// owner (the task that runs it). Call it before the node starts: only then
// may the node register. A name that another owner holds is refused with
// ErrTaken: no task may take another's name, whatever node_name it asks
// for.
func (s *Server) Set(name string, port int, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o, ok := s.owners[name]; ok && o != owner {
		return fmt.Errorf("%w: %s belongs to another task on this client", ErrTaken, name)
	}
	s.known[name] = Entry{Name: name, Port: port}.withDefaults()
	s.owners[name] = owner
	if r, ok := s.regs[name]; ok && r.port != port {
		delete(s.regs, name)
		_ = r.c.Close()
	}
	return nil
}

// Remove forgets a node that owner ran and drops its registration. A name
// that another owner holds is left alone.
func (s *Server) Remove(name, owner string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owners[name] != owner {
		return
	}
	delete(s.known, name)
	delete(s.owners, name)
	if r, ok := s.regs[name]; ok {
		delete(s.regs, name)
		_ = r.c.Close()
	}
}

// Lookup returns the entry for a short node name, from the nodes the
// driver started.
func (s *Server) Lookup(name string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.known[name]
	return e, ok
}

func (s *Server) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return
			}
			s.logger.Warn("epmd: accept failed", "error", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		select {
		case s.slots <- struct{}{}:
			go s.handle(c)
		default:
			_ = c.Close()
			if ok, _ := s.mayWarn("busy"); ok {
				s.logger.Warn("epmd: too many connections, closing new ones", "max", s.lim.maxConns, "remote", c.RemoteAddr().String())
			}
		}
	}
}

// handle serves one connection: one request, except ALIVE2, whose
// connection stays open for as long as the node is registered.
func (s *Server) handle(c net.Conn) {
	held := true
	release := func() {
		if held {
			held = false
			<-s.slots
		}
	}
	defer func() {
		release()
		_ = c.Close()
	}()
	_ = c.SetReadDeadline(time.Now().Add(s.lim.readTimeout))
	var buf [maxRequest]byte
	req, err := readRequest(c, &buf)
	if err != nil {
		if errors.Is(err, errTooLong) {
			s.logger.Debug("epmd: request too long", "remote", c.RemoteAddr().String())
		}
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(s.lim.writeTimeout))
	switch req[0] {
	case alive2Req:
		s.alive2(c, req[1:], release)
	case portPlease2Req:
		s.portPlease2(c, string(req[1:]))
	case namesReq:
		s.names(c)
	default:
		s.logger.Debug("epmd: unsupported request", "code", req[0], "remote", c.RemoteAddr().String())
	}
}

// alive2 registers a node the driver started; release gives up the
// connection's slot once it is a registration, whose number the known
// table bounds.
func (s *Server) alive2(c net.Conn, b []byte, release func()) {
	remote := c.RemoteAddr().String()
	e, err := parseAlive2(b)
	extended := err != nil || e.High >= 6
	reply := func(result byte, creation uint32) {
		out := []byte{alive2Resp, result, 0, 0}
		if extended {
			out = []byte{alive2XResp, result, 0, 0, 0, 0}
			binary.BigEndian.PutUint32(out[2:], creation)
		} else {
			binary.BigEndian.PutUint16(out[2:], uint16(creation))
		}
		_ = c.SetWriteDeadline(time.Now().Add(s.lim.writeTimeout))
		_, _ = c.Write(out)
	}
	refuse := func(reason string) {
		s.refused(e.Name, remote, reason)
		reply(1, 0)
	}
	if err != nil {
		refuse(err.Error())
		return
	}
	// Like epmd, accept registrations only from this host.
	if !isLoopback(c.RemoteAddr()) {
		refuse("not from this host")
		return
	}
	s.mu.Lock()
	k, ok := s.known[e.Name]
	if s.closed || !ok || k.Port != e.Port {
		s.mu.Unlock()
		if ok {
			refuse(fmt.Sprintf("port %d is not the node's port %d", e.Port, k.Port))
		} else {
			refuse("not a node the driver started")
		}
		return
	}
	reg := &registration{c: c, port: e.Port}
	old := s.regs[e.Name]
	s.regs[e.Name] = reg
	s.creation++
	creation := s.creation
	if !extended {
		creation = creation%3 + 1
	}
	s.mu.Unlock()
	release()
	if old != nil {
		_ = old.c.Close()
		if ok, _ := s.mayWarn("replaced " + clip(e.Name)); ok {
			s.logger.Warn("epmd: a registration replaced a live one for the same node", "name", e.Name,
				"remote", remote, "previous", old.c.RemoteAddr().String())
		}
	}
	reply(0, creation)
	s.logger.Debug("epmd: node registered", "name", e.Name, "port", e.Port)

	// The registration lasts as long as the connection; a node sends
	// nothing more on it.
	_ = c.SetReadDeadline(time.Time{})
	var sink [64]byte
	for {
		if _, err := c.Read(sink[:]); err != nil {
			break
		}
	}
	s.mu.Lock()
	if s.regs[e.Name] == reg {
		delete(s.regs, e.Name)
	}
	s.mu.Unlock()
}

// refused logs a refused registration, at most once per name a minute.
func (s *Server) refused(name, remote, reason string) {
	name = clip(name)
	ok, last := s.mayWarn("refused " + name)
	if !ok {
		return
	}
	s.logger.Warn("epmd: refused to register a node the driver did not start", "name", name, "remote", remote, "reason", reason)
	if last {
		s.logger.Warn("epmd: further refusals are not logged for a minute")
	}
}

func (s *Server) portPlease2(c net.Conn, name string) {
	e, ok := s.Lookup(name)
	if !ok {
		_, _ = c.Write([]byte{port2Resp, 1})
		return
	}
	_, _ = c.Write(portReply(e))
}

// fromLoopback reports whether c's peer is on this host's loopback.
func fromLoopback(c net.Conn) bool {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	return err == nil && ap.Addr().Unmap().IsLoopback()
}

// portReply is the PORT2_RESP for a known node.
func portReply(e Entry) []byte {
	out := []byte{port2Resp, 0}
	out = binary.BigEndian.AppendUint16(out, uint16(e.Port))
	out = append(out, e.NodeType, e.Protocol)
	out = binary.BigEndian.AppendUint16(out, e.High)
	out = binary.BigEndian.AppendUint16(out, e.Low)
	out = binary.BigEndian.AppendUint16(out, uint16(len(e.Name)))
	out = append(out, e.Name...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(e.Extra)))
	out = append(out, e.Extra...)
	return out
}

// names answers NAMES: with every node the driver started for a local
// peer (net_adm:names/0 on this host), and with none for any other. A
// remote peer looks a node up by its name (PORT_PLEASE2), as clustering
// does; the list of every tenant's nodes is not its business.
func (s *Server) names(c net.Conn) {
	_, portStr, _ := net.SplitHostPort(s.ln.Addr().String())
	var port uint32
	_, _ = fmt.Sscan(portStr, &port)
	if !fromLoopback(c) {
		_, _ = c.Write(binary.BigEndian.AppendUint32(nil, port))
		return
	}
	s.mu.Lock()
	all := make(map[string]int, len(s.known))
	for n, e := range s.known {
		all[n] = e.Port
	}
	s.mu.Unlock()
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "name %s at port %d\n", n, all[n])
	}
	out := binary.BigEndian.AppendUint32(nil, port)
	_, _ = c.Write(append(out, b.String()...))
}
