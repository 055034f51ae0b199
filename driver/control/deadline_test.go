package control

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestEvalEndsOnTimeWithALeftoverChild is an erl_call that starts a child
// holding its output open and never answers: the call must still end,
// with a timeout, and take the child with it.
func TestEvalEndsOnTimeWithALeftoverChild(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	script := "#!/bin/sh\nsleep 600 &\necho $! > " + pidFile + "\nwait\n"
	fake := filepath.Join(dir, "erl_call")
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &Client{ERLCall: fake, Node: "n@127.0.0.1", Dir: dir, Timeout: time.Second}
	done := make(chan error, 1)
	go func() {
		_, err := c.Eval(context.Background(), "ok")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a call that never answered succeeded")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call did not end after its deadline")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	proc := "/proc/" + string(b[:len(b)-1])
	for range 50 {
		if st, err := os.ReadFile(proc + "/stat"); err != nil || containsZombie(st) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the call's child %s outlived it", proc)
}

func containsZombie(stat []byte) bool {
	// The state follows the command name in parentheses.
	for i := len(stat) - 1; i > 0; i-- {
		if stat[i] == ')' && i+2 < len(stat) {
			return stat[i+2] == 'Z'
		}
	}
	return false
}
