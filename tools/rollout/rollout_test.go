package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fake is a Cluster whose allocations upgrade at once, except those set
// to fail.
type fake struct {
	allocs  []Alloc
	fail    map[string]bool // alloc IDs whose upgrade fails
	unwell  map[string]bool // alloc IDs whose checks never pass
	vars    map[string]*Target
	running map[string]string // alloc ID -> version
	log     []string
	written []string // key: pre-commands, for each target written
}

func newFake(n int) *fake {
	f := &fake{fail: map[string]bool{}, unwell: map[string]bool{}, vars: map[string]*Target{}, running: map[string]string{}}
	for i := n - 1; i >= 0; i-- { // out of order on purpose
		id := string(rune('a' + i))
		f.allocs = append(f.allocs, Alloc{ID: id, Name: "job.app[" + string(rune('0'+i)) + "]", Index: i, Version: "1.0.0"})
		f.running[id] = "1.0.0"
	}
	return f
}

func (f *fake) Allocs(context.Context) ([]Alloc, error) { return f.allocs, nil }

func (f *fake) SetTargets(_ context.Context, set map[string]*Target) error {
	for k, t := range set {
		if t == nil {
			delete(f.vars, k)
			continue
		}
		f.vars[k] = t
		f.written = append(f.written, fmt.Sprintf("%s:%d", k, len(t.PreCommands)))
		if k != AllKey && !f.fail[k] {
			f.running[k] = t.Version
		}
	}
	return nil
}

func (f *fake) Mark(context.Context, string) (time.Time, error) { return time.Now(), nil }

func (f *fake) WaitOutcome(_ context.Context, alloc, version string, _ time.Time) (Outcome, error) {
	f.log = append(f.log, alloc+"→"+version)
	if f.running[alloc] != version {
		return Outcome{Result: "failed", Message: "code_change_failed"}, nil
	}
	return Outcome{Result: "succeeded", Took: 200 * time.Millisecond}, nil
}

func (f *fake) WaitHealthy(_ context.Context, alloc string) (string, error) {
	if f.unwell[alloc] {
		return "", errors.New("check http is critical")
	}
	return "Consul checks pass", nil
}

func TestRun(t *testing.T) {
	cases := []struct {
		name    string
		fail    string
		unwell  string
		wantErr string
		// log is the order of the upgrades and reverts.
		log     string
		running string // versions of a, b, c afterwards
	}{
		{name: "through", log: "a→2.0.0 b→2.0.0 c→2.0.0", running: "2.0.0 2.0.0 2.0.0"},
		{name: "second fails", fail: "b", wantErr: "job.app[1] failed: failed: code_change_failed; reverted 1",
			log: "a→2.0.0 b→2.0.0 a→1.0.0", running: "1.0.0 1.0.0 1.0.0"},
		{name: "third unhealthy", unwell: "c", wantErr: "unhealthy after the upgrade",
			log: "a→2.0.0 b→2.0.0 c→2.0.0 c→1.0.0 b→1.0.0 a→1.0.0", running: "1.0.0 1.0.0 1.0.0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(3)
			if tc.fail != "" {
				f.fail[tc.fail] = true
			}
			if tc.unwell != "" {
				f.unwell[tc.unwell] = true
			}
			var steps []string
			err := Run(context.Background(), f, Plan{Target: Target{Version: "2.0.0", Source: "s3://b/k"}}, func(e Event) {
				steps = append(steps, e.Step)
			})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Run: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Run: %v, want an error with %q", err, tc.wantErr)
			}
			if got := strings.Join(f.log, " "); got != tc.log {
				t.Errorf("order %q, want %q", got, tc.log)
			}
			if got := f.running["a"] + " " + f.running["b"] + " " + f.running["c"]; got != tc.running {
				t.Errorf("running %q, want %q", got, tc.running)
			}
			if tc.wantErr == "" {
				if len(f.vars) != 1 || f.vars[AllKey] == nil {
					t.Errorf("variable after success: %v, want only the %q key", f.vars, AllKey)
				}
				if steps[len(steps)-1] != "done" {
					t.Errorf("last step %q, want done", steps[len(steps)-1])
				}
			} else if f.vars[tc.fail] != nil {
				t.Errorf("the failed allocation's key stays: %v", f.vars)
			}
		})
	}
}

// TestPreCommandsOnce: a target's pre-commands go to the canary's key
// only; the other allocations and the all key get the target without
// them, and so does a revert.
func TestPreCommandsOnce(t *testing.T) {
	f := newFake(3)
	target := Target{Version: "2.0.0", Source: "s3://b/k", PreCommands: [][]string{{"eval", "App.migrate()"}}}
	if err := Run(context.Background(), f, Plan{Target: target}, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.written, " "); !strings.HasPrefix(got, "a:1 b:0 c:0 ") || !strings.Contains(got, "all:0") {
		t.Errorf("targets written %q: want the pre-commands on a's key only", got)
	}
	f = newFake(2)
	f.fail["b"] = true
	_ = Run(context.Background(), f, Plan{Target: target}, nil)
	if got := strings.Join(f.written, " "); got != "a:1 b:0 a:0" {
		t.Errorf("targets written %q, want a:1 b:0 a:0 (the revert has none)", got)
	}
}

func TestAllocIndex(t *testing.T) {
	for name, want := range map[string]int{"hello.app[0]": 0, "hello.app[12]": 12, "x": -1, "a[b]": -1, "": -1} {
		if got := allocIndex(name); got != want {
			t.Errorf("allocIndex(%q) = %d, want %d", name, got, want)
		}
	}
}
