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
// use: ALIVE2, PORT_PLEASE2 and NAMES) from a table it keeps. Nodes still
// register over ALIVE2 as usual; on top of that the driver records the name
// and port of every node it starts, so lookups keep working after the
// plugin restarts and the nodes' registration connections are gone.
package epmd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Request and response codes of the epmd protocol.
const (
	alive2Req      = 120
	alive2Resp     = 121
	alive2XResp    = 118
	portPlease2Req = 122
	port2Resp      = 119
	namesReq       = 110
)

// Entry is one node as epmd reports it.
type Entry struct {
	Name     string // the part before @
	Port     int
	NodeType byte // 77 normal, 72 hidden
	Protocol byte // 0: TCP/IPv4
	High     uint16
	Low      uint16
	Extra    []byte
}

// defaults are what a current OTP node registers with.
func (e Entry) withDefaults() Entry {
	if e.NodeType == 0 {
		e.NodeType = 77
	}
	if e.High == 0 {
		e.High, e.Low = 6, 5
	}
	return e
}

// Server answers the epmd protocol.
type Server struct {
	ln     net.Listener
	logger hclog.Logger

	mu       sync.Mutex
	known    map[string]Entry // nodes the driver started
	alive    map[string]Entry // nodes registered over a live connection
	creation uint32
	closed   bool
}

// Listen starts a port mapper on addr, such as "0.0.0.0:4369".
func Listen(addr string, logger hclog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{
		ln:       ln,
		logger:   logger,
		known:    map[string]Entry{},
		alive:    map[string]Entry{},
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
	s.mu.Unlock()
	return s.ln.Close()
}

// Set records a node the driver runs, by its short name (before @).
func (s *Server) Set(name string, port int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.known[name] = Entry{Name: name, Port: port}.withDefaults()
}

// Remove forgets a node the driver ran.
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.known, name)
}

// Lookup returns the entry for a short node name.
func (s *Server) Lookup(name string) (Entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.alive[name]; ok {
		return e, true
	}
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
		go s.handle(c)
	}
}

// handle serves one connection: one request, except ALIVE2, whose
// connection stays open for as long as the node is registered.
func (s *Server) handle(c net.Conn) {
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	var n uint16
	if err := binary.Read(r, binary.BigEndian, &n); err != nil || n == 0 {
		return
	}
	req := make([]byte, n)
	if _, err := io.ReadFull(r, req); err != nil {
		return
	}
	switch req[0] {
	case alive2Req:
		s.alive2(c, r, req[1:])
	case portPlease2Req:
		s.portPlease2(c, string(req[1:]))
	case namesReq:
		s.names(c)
	default:
		s.logger.Debug("epmd: unsupported request", "code", req[0], "remote", c.RemoteAddr())
	}
}

func (s *Server) alive2(c net.Conn, r *bufio.Reader, b []byte) {
	e, err := parseAlive2(b)
	reply := func(result byte, creation uint32, extended bool) {
		if extended {
			out := []byte{alive2XResp, result, 0, 0, 0, 0}
			binary.BigEndian.PutUint32(out[2:], creation)
			_, _ = c.Write(out)
			return
		}
		out := []byte{alive2Resp, result, 0, 0}
		binary.BigEndian.PutUint16(out[2:], uint16(creation))
		_, _ = c.Write(out)
	}
	if err != nil {
		s.logger.Debug("epmd: bad ALIVE2 request", "error", err)
		reply(1, 0, true)
		return
	}
	extended := e.High >= 6
	// Like epmd, accept registrations only from this host.
	if !isLoopback(c.RemoteAddr()) {
		reply(1, 0, extended)
		return
	}
	s.mu.Lock()
	if _, taken := s.alive[e.Name]; taken {
		s.mu.Unlock()
		reply(1, 0, extended)
		return
	}
	s.creation++
	creation := s.creation
	if !extended {
		creation = creation%3 + 1
	}
	s.alive[e.Name] = e
	s.mu.Unlock()
	reply(0, creation, extended)
	s.logger.Debug("epmd: node registered", "name", e.Name, "port", e.Port)

	// The registration lasts as long as the connection.
	_ = c.SetReadDeadline(time.Time{})
	_, _ = io.Copy(io.Discard, r)
	s.mu.Lock()
	if cur, ok := s.alive[e.Name]; ok && cur.Port == e.Port {
		delete(s.alive, e.Name)
	}
	s.mu.Unlock()
}

func (s *Server) portPlease2(c net.Conn, name string) {
	e, ok := s.Lookup(name)
	if !ok {
		_, _ = c.Write([]byte{port2Resp, 1})
		return
	}
	out := []byte{port2Resp, 0}
	out = binary.BigEndian.AppendUint16(out, uint16(e.Port))
	out = append(out, e.NodeType, e.Protocol)
	out = binary.BigEndian.AppendUint16(out, e.High)
	out = binary.BigEndian.AppendUint16(out, e.Low)
	out = binary.BigEndian.AppendUint16(out, uint16(len(e.Name)))
	out = append(out, e.Name...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(e.Extra)))
	out = append(out, e.Extra...)
	_, _ = c.Write(out)
}

func (s *Server) names(c net.Conn) {
	_, portStr, _ := net.SplitHostPort(s.ln.Addr().String())
	var port uint32
	_, _ = fmt.Sscan(portStr, &port)
	s.mu.Lock()
	all := map[string]int{}
	for n, e := range s.known {
		all[n] = e.Port
	}
	for n, e := range s.alive {
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

func parseAlive2(b []byte) (Entry, error) {
	if len(b) < 10 {
		return Entry{}, errors.New("short request")
	}
	e := Entry{
		Port:     int(binary.BigEndian.Uint16(b[0:])),
		NodeType: b[2],
		Protocol: b[3],
		High:     binary.BigEndian.Uint16(b[4:]),
		Low:      binary.BigEndian.Uint16(b[6:]),
	}
	nlen := int(binary.BigEndian.Uint16(b[8:]))
	b = b[10:]
	if len(b) < nlen+2 {
		return Entry{}, errors.New("short name")
	}
	e.Name = string(b[:nlen])
	b = b[nlen:]
	elen := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < elen {
		return Entry{}, errors.New("short extra")
	}
	e.Extra = append([]byte(nil), b[:elen]...)
	if !ValidName(e.Name) {
		return Entry{}, fmt.Errorf("invalid node name %q", e.Name)
	}
	return e, nil
}

func isLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// Names asks the port mapper at addr (host:port) which nodes it knows, and
// returns their names by port.
func Names(addr string, timeout time.Duration) (map[int]string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte{0, 1, namesReq}); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return nil, err
	}
	if len(b) < 4 {
		return nil, errors.New("epmd: short NAMES reply")
	}
	out := map[int]string{}
	for _, line := range strings.Split(string(b[4:]), "\n") {
		var name string
		var port int
		// The reply comes from another host: keep only names that are
		// plain node names, since they end up in Erlang expressions.
		if _, err := fmt.Sscanf(line, "name %s at port %d", &name, &port); err == nil && ValidName(name) {
			out[port] = name
		}
	}
	return out, nil
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,255}$`)

// ValidName reports whether name is a plain node name (the part before
// @): letters, digits, '_', '.', '-'.
func ValidName(name string) bool { return namePattern.MatchString(name) }
