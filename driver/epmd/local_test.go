package epmd

import (
	"net"
	"strings"
	"testing"
)

// TestLocal is the port mapper in a task's network namespace: it takes
// the task's own node, at its port inside, and nothing else.
func TestLocal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := ServeLocal(ln, "app-1234", 9100)
	addr := ln.Addr().String()

	if _, res := register(t, addr, "other", 9100); res == 0 {
		t.Error("another name registered")
	}
	if _, res := register(t, addr, "app-1234", 9101); res == 0 {
		t.Error("the node's name registered with another port")
	}
	c, res := register(t, addr, "app-1234", 9100)
	if res != 0 {
		t.Fatalf("the node's own registration was refused: %d", res)
	}
	if p := portPlease(t, addr, "app-1234"); p != 9100 {
		t.Errorf("PORT_PLEASE2 for the node: %d, want 9100", p)
	}
	if p := portPlease(t, addr, "other"); p != 0 {
		t.Errorf("PORT_PLEASE2 for another name: %d, want not found", p)
	}
	if n := names(t, addr); !strings.Contains(n, "name app-1234 at port 9100") || strings.Count(n, "name ") != 1 {
		t.Errorf("NAMES: %q", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !closedWithin(c, 2e9) {
		t.Error("the registration outlived Close")
	}
}
