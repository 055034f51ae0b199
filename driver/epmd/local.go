package epmd

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"time"
)

// Local answers the port mapper protocol inside one task's network
// namespace, for that task's node alone. A node in a bridge-mode group
// registers with the port mapper on its own loopback, which is the
// namespace's: Local accepts that registration (its name, the port it
// listens on inside), and answers lookups of that name with that port.
// Peers outside ask the client's Server, which answers with the host port
// that Nomad maps to it.
type Local struct {
	ln    net.Listener
	entry Entry
	lim   limits
	slots chan struct{}

	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	creation uint32
	closed   bool
}

// ServeLocal answers on ln, a listener in the task's namespace, for the
// node name (short, before @) that listens on port there.
func ServeLocal(ln net.Listener, name string, port int) *Local {
	l := &Local{
		ln:       ln,
		entry:    Entry{Name: name, Port: port}.withDefaults(),
		lim:      defaultLimits,
		slots:    make(chan struct{}, 16),
		conns:    map[net.Conn]struct{}{},
		creation: uint32(time.Now().Unix()),
	}
	go l.serve()
	return l
}

// Close stops answering and drops the node's registration.
func (l *Local) Close() error {
	l.mu.Lock()
	l.closed = true
	conns := l.conns
	l.conns = map[net.Conn]struct{}{}
	l.mu.Unlock()
	err := l.ln.Close()
	for c := range conns {
		_ = c.Close()
	}
	return err
}

func (l *Local) serve() {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			l.mu.Lock()
			closed := l.closed
			l.mu.Unlock()
			if closed {
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		select {
		case l.slots <- struct{}{}:
			go l.handle(c)
		default:
			_ = c.Close()
		}
	}
}

func (l *Local) track(c net.Conn, on bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on {
		if l.closed {
			return false
		}
		l.conns[c] = struct{}{}
	} else {
		delete(l.conns, c)
	}
	return true
}

func (l *Local) handle(c net.Conn) {
	defer func() {
		<-l.slots
		_ = c.Close()
	}()
	if !l.track(c, true) {
		return
	}
	defer l.track(c, false)
	_ = c.SetReadDeadline(time.Now().Add(l.lim.readTimeout))
	var buf [maxRequest]byte
	req, err := readRequest(c, &buf)
	if err != nil {
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(l.lim.writeTimeout))
	switch req[0] {
	case alive2Req:
		l.alive2(c, req[1:])
	case portPlease2Req:
		if string(req[1:]) != l.entry.Name {
			_, _ = c.Write([]byte{port2Resp, 1})
			return
		}
		_, _ = c.Write(portReply(l.entry))
	case namesReq:
		out := binary.BigEndian.AppendUint32(nil, uint32(l.entry.Port))
		_, _ = c.Write(append(out, fmt.Sprintf("name %s at port %d\n", l.entry.Name, l.entry.Port)...))
	}
}

func (l *Local) alive2(c net.Conn, b []byte) {
	e, err := parseAlive2(b)
	extended := err != nil || e.High >= 6
	ok := err == nil && isLoopback(c.RemoteAddr()) && e.Name == l.entry.Name && e.Port == l.entry.Port
	l.mu.Lock()
	l.creation++
	creation := l.creation
	l.mu.Unlock()
	var out []byte
	result := byte(0)
	if !ok {
		result, creation = 1, 0
	}
	if extended {
		out = binary.BigEndian.AppendUint32([]byte{alive2XResp, result}, creation)
	} else {
		out = binary.BigEndian.AppendUint16([]byte{alive2Resp, result}, uint16(creation%3+1))
	}
	if _, err := c.Write(out); err != nil || !ok {
		return
	}
	// The registration lasts as long as the connection.
	_ = c.SetReadDeadline(time.Time{})
	var sink [64]byte
	for {
		if _, err := c.Read(sink[:]); err != nil {
			return
		}
	}
}
