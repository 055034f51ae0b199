package epmd

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// A squatter that registers a known name first cannot keep the node from
// registering, nor send its peers elsewhere.
func TestSquatKnownName(t *testing.T) {
	s, addr := start(t, nil, defaultLimits)
	_ = s.Set("shop-1", 24002, "task-a")

	// With a port of its own: refused.
	if _, res := register(t, addr, "shop-1", 31000); res == 0 {
		t.Fatal("squatter's port accepted")
	}
	// With the node's port: accepted, but the node takes over.
	squat, res := register(t, addr, "shop-1", 24002)
	if res != 0 {
		t.Fatalf("registration with the known port refused: %d", res)
	}
	node, res := register(t, addr, "shop-1", 24002)
	if res != 0 {
		t.Fatal("node's own registration refused after a squatter's")
	}
	if !closedWithin(squat, 2*time.Second) {
		t.Fatal("squatter's registration not closed by the node's")
	}
	if closedWithin(node, 100*time.Millisecond) {
		t.Fatal("node's registration closed")
	}
	if p := portPlease(t, addr, "shop-1"); p != 24002 {
		t.Fatalf("port %d, want 24002", p)
	}
}

// A squatter cannot take a name the driver has not started (yet), and is
// logged once.
func TestSquatUnknownName(t *testing.T) {
	var log syncBuf
	logger := hclog.New(&hclog.LoggerOptions{Output: &log, Level: hclog.Warn})
	s, addr := start(t, logger, defaultLimits)
	for range 5 {
		if _, res := register(t, addr, "JOB-ALLOC8", 31000); res == 0 {
			t.Fatal("unknown name accepted")
		}
	}
	if p := portPlease(t, addr, "JOB-ALLOC8"); p != 0 {
		t.Fatalf("squatter found at port %d", p)
	}
	if got := names(t, addr); strings.Contains(got, "JOB-ALLOC8") {
		t.Fatalf("NAMES lists the squatter: %q", got)
	}
	out := log.String()
	if n := strings.Count(out, "name=JOB-ALLOC8"); n != 1 || !strings.Contains(out, "[WARN]") ||
		!strings.Contains(out, "remote=127.0.0.1:") {
		t.Fatalf("want one warning with name and remote, got %d in %q", n, out)
	}
	// A name that is no node name is refused and logged without its
	// control characters.
	if _, res := register(t, addr, "evil\nname", 31000); res == 0 {
		t.Fatal("invalid name accepted")
	}
	if out := log.String(); strings.Contains(out, "evil\n") || !strings.Contains(out, "evil?name") {
		t.Fatalf("invalid name not sanitized in %q", out)
	}

	// The squatter did not block the node.
	_ = s.Set("JOB-ALLOC8", 24002, "task-a")
	if _, res := register(t, addr, "JOB-ALLOC8", 24002); res != 0 {
		t.Fatal("node refused after a squat attempt")
	}
	if p := portPlease(t, addr, "JOB-ALLOC8"); p != 24002 {
		t.Fatalf("port %d, want 24002", p)
	}
}

// After a plugin restart nodes do not register again; the new server's
// table still keeps squatters out.
func TestSquatAfterRestart(t *testing.T) {
	s1, addr1 := start(t, nil, defaultLimits)
	_ = s1.Set("shop-1", 24002, "task-a")
	node, res := register(t, addr1, "shop-1", 24002)
	if res != 0 {
		t.Fatal("node refused")
	}
	s1.Close()
	if !closedWithin(node, 2*time.Second) {
		t.Fatal("registration outlived Close")
	}

	s2, addr := start(t, nil, defaultLimits)
	_ = s2.Set("shop-1", 24002, "task-a")
	if _, res := register(t, addr, "shop-1", 31000); res == 0 {
		t.Fatal("squatter took a known name after restart")
	}
	if _, res := register(t, addr, "other-1", 31000); res == 0 {
		t.Fatal("squatter took an unknown name after restart")
	}
	if p := portPlease(t, addr, "shop-1"); p != 24002 {
		t.Fatalf("port %d, want 24002", p)
	}
	if p := portPlease(t, addr, "other-1"); p != 0 {
		t.Fatalf("squatter found at port %d", p)
	}
	if got := names(t, addr); got != "name shop-1 at port 24002\n" {
		t.Fatalf("NAMES = %q", got)
	}
}

// A task cannot take another task's name through node_name, and cannot
// remove it when it ends.
func TestSetRefusesAnotherOwnersName(t *testing.T) {
	s := &Server{known: map[string]Entry{}, owners: map[string]string{}, regs: map[string]*registration{}}
	if err := s.Set("shop-1", 24002, "alloc-a/web"); err != nil {
		t.Fatal(err)
	}
	err := s.Set("shop-1", 25000, "alloc-b/web")
	if !errors.Is(err, ErrTaken) {
		t.Fatalf("another task took the name: %v", err)
	}
	if e, _ := s.Lookup("shop-1"); e.Port != 24002 {
		t.Fatalf("lookup answers port %d after the attempt, want 24002", e.Port)
	}
	s.Remove("shop-1", "alloc-b/web")
	if e, ok := s.Lookup("shop-1"); !ok || e.Port != 24002 {
		t.Fatalf("another task's Remove dropped the name: %v %v", e, ok)
	}
	// The owner itself may set it again (a restart) and remove it.
	if err := s.Set("shop-1", 24003, "alloc-a/web"); err != nil {
		t.Fatal(err)
	}
	s.Remove("shop-1", "alloc-a/web")
	if _, ok := s.Lookup("shop-1"); ok {
		t.Fatal("the owner's Remove left the name")
	}
}
