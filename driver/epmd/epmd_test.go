package epmd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func request(t *testing.T, addr string, req []byte) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(req)))
	if _, err := c.Write(append(msg, req...)); err != nil {
		t.Fatal(err)
	}
	return c
}

func alive2(name string, port uint16) []byte {
	b := []byte{alive2Req}
	b = binary.BigEndian.AppendUint16(b, port)
	b = append(b, 77, 0)
	b = binary.BigEndian.AppendUint16(b, 6)
	b = binary.BigEndian.AppendUint16(b, 5)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	return binary.BigEndian.AppendUint16(b, 0)
}

// register sends ALIVE2 and returns the connection and the result, 0 for
// accepted.
func register(t *testing.T, addr, name string, port uint16) (net.Conn, byte) {
	t.Helper()
	c := request(t, addr, alive2(name, port))
	resp := make([]byte, 6)
	if _, err := io.ReadFull(c, resp); err != nil {
		t.Fatalf("ALIVE2 %s: %v", name, err)
	}
	if resp[0] != alive2XResp {
		t.Fatalf("ALIVE2_X_RESP = %v", resp)
	}
	return c, resp[1]
}

// portPlease asks for a node's port; 0 means not found.
func portPlease(t *testing.T, addr, name string) int {
	t.Helper()
	c := request(t, addr, append([]byte{portPlease2Req}, name...))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != port2Resp {
		t.Fatalf("bad PORT2_RESP %v", b)
	}
	if b[1] != 0 {
		return 0
	}
	if got := string(b[12 : 12+int(binary.BigEndian.Uint16(b[10:]))]); got != name {
		t.Fatalf("PORT2_RESP names %q, want %q", got, name)
	}
	return int(binary.BigEndian.Uint16(b[2:]))
}

// names returns the text of a NAMES reply.
func names(t *testing.T, addr string) string {
	t.Helper()
	b, err := io.ReadAll(request(t, addr, []byte{namesReq}))
	if err != nil || len(b) < 4 {
		t.Fatalf("NAMES: %v %v", b, err)
	}
	return string(b[4:])
}

// closedWithin reports whether the peer closes c within d.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	return err == nil || errors.Is(err, syscall.ECONNRESET)
}

func start(t *testing.T, logger hclog.Logger, lim limits) (*Server, string) {
	t.Helper()
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s, err := listen("127.0.0.1:0", logger, lim)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, s.Addr().String()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestServer(t *testing.T) {
	s, addr := start(t, nil, defaultLimits)

	// A node the driver started is found without registering.
	_ = s.Set("shop-1234abcd", 24002, "task-a")
	if p := portPlease(t, addr, "shop-1234abcd"); p != 24002 {
		t.Fatalf("port %d, want 24002", p)
	}
	if p := portPlease(t, addr, "nobody"); p != 0 {
		t.Fatalf("unknown node has port %d", p)
	}

	// It registers with its own port; the connection stays open.
	reg, res := register(t, addr, "shop-1234abcd", 24002)
	if res != 0 {
		t.Fatalf("node's registration refused: %d", res)
	}
	if closedWithin(reg, 100*time.Millisecond) {
		t.Fatal("registration connection closed")
	}
	if got := names(t, addr); got != "name shop-1234abcd at port 24002\n" {
		t.Fatalf("NAMES = %q", got)
	}

	// Remove forgets it and drops its registration.
	s.Remove("shop-1234abcd", "task-a")
	if !closedWithin(reg, 2*time.Second) {
		t.Fatal("registration outlived Remove")
	}
	if p := portPlease(t, addr, "shop-1234abcd"); p != 0 {
		t.Fatal("removed node still found")
	}
	if got := names(t, addr); got != "" {
		t.Fatalf("NAMES after Remove = %q", got)
	}
}

// remoteConn is a connection whose peer claims another host's address.
type remoteConn struct {
	net.Conn
	from net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.from }

// A remote peer gets no list of the nodes (every tenant's) from NAMES; it
// looks one up by name, as PortPlease, the clustering lookup, does.
func TestNamesOnlyForLocalPeers(t *testing.T) {
	s, addr := start(t, nil, defaultLimits)
	_ = s.Set("shop-1234abcd", 24002, "task-a")

	srv, cli := net.Pipe()
	defer cli.Close()
	go func() {
		s.names(remoteConn{srv, &net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 40000}})
		srv.Close()
	}()
	b, _ := io.ReadAll(cli)
	if len(b) != 4 {
		t.Errorf("remote NAMES answered %q, want the port and no names", b[min(4, len(b)):])
	}
	if got := names(t, addr); got != "name shop-1234abcd at port 24002\n" {
		t.Errorf("local NAMES = %q", got)
	}
	if p, err := PortPlease(addr, "shop-1234abcd", time.Second); err != nil || p != 24002 {
		t.Errorf("PortPlease = %d, %v", p, err)
	}
	if p, err := PortPlease(addr, "nobody", time.Second); err != nil || p != 0 {
		t.Errorf("PortPlease of an unknown node = %d, %v", p, err)
	}
	if _, err := PortPlease(addr, "bad name", time.Second); err == nil {
		t.Error("PortPlease sent an invalid name")
	}
}
