package epmd

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"strings"
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

// portPlease asks for a node's port; 0 means not found.
func portPlease(t *testing.T, addr, name string) int {
	t.Helper()
	c := request(t, addr, append([]byte{portPlease2Req}, name...))
	defer c.Close()
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

func TestServer(t *testing.T) {
	s, err := Listen("127.0.0.1:0", hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	addr := s.Addr().String()

	// A node the driver started is found without registering.
	s.Set("shop-1234abcd", 24002)
	if p := portPlease(t, addr, "shop-1234abcd"); p != 24002 {
		t.Fatalf("port %d, want 24002", p)
	}
	if p := portPlease(t, addr, "nobody"); p != 0 {
		t.Fatalf("unknown node has port %d", p)
	}

	// A node that registers is found while its connection lasts.
	reg := request(t, addr, alive2("remsh-1", 31000))
	resp := make([]byte, 6)
	if _, err := io.ReadFull(reg, resp); err != nil {
		t.Fatal(err)
	}
	if resp[0] != alive2XResp || resp[1] != 0 {
		t.Fatalf("ALIVE2_X_RESP = %v", resp)
	}
	if p := portPlease(t, addr, "remsh-1"); p != 31000 {
		t.Fatalf("registered port %d, want 31000", p)
	}
	// The same name cannot register twice.
	dup := request(t, addr, alive2("remsh-1", 31001))
	if _, err := io.ReadFull(dup, resp); err != nil || resp[1] == 0 {
		t.Fatalf("duplicate registration accepted: %v %v", resp, err)
	}
	dup.Close()

	// NAMES lists both.
	c := request(t, addr, []byte{namesReq})
	b, _ := io.ReadAll(bufio.NewReader(c))
	c.Close()
	if names := string(b[4:]); !strings.Contains(names, "name shop-1234abcd at port 24002") || !strings.Contains(names, "name remsh-1 at port 31000") {
		t.Fatalf("NAMES = %q", names)
	}

	reg.Close()
	deadline := time.Now().Add(2 * time.Second)
	for portPlease(t, addr, "remsh-1") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("registration outlived its connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Remove("shop-1234abcd")
	if p := portPlease(t, addr, "shop-1234abcd"); p != 0 {
		t.Fatal("removed node still found")
	}
}
