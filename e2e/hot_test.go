//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// hotTarget is a value in a job's hot-upgrade Variable.
type hotTarget = hotspec.Target

// target returns the hot target for a tarball that the release server has.
func target(t testing.TB, version, tarball string) hotTarget {
	return hotTarget{Version: version, Source: releases.URL + "/" + tarball, SHA256: releases.SHA256(t, tarball)}
}

// hotPath is the Variable a test job's task follows.
func hotPath(jobID string) string { return hotspec.Path(jobID, "app", "node") }

// setHot writes the job's hot-upgrade Variable with one key per
// allocation, as an operator (or the tools) would.
func setHot(t testing.TB, jobID string, targets map[string]hotTarget) {
	t.Helper()
	items := map[string]string{}
	for k, v := range targets {
		items[k] = v.Encode()
	}
	putVar(t, hotPath(jobID), items)
}

// hotEvent is a driver event about a hot upgrade.
type hotEvent struct {
	Outcome, Version, Message string
	Time                      time.Time
}

// waitHot waits for the outcome of the hot upgrade to version that was
// asked for after since: an event whose beam.hot is not "started".
func (j *job) waitHot(task, version string, since time.Time) hotEvent {
	j.t.Helper()
	var ev hotEvent
	err := waitEvery(50*time.Millisecond, 90*time.Second, func() error {
		for _, e := range j.task(task).Events {
			at := time.Unix(0, e.Time)
			r, ok := hotspec.ReportOf(e.Details)
			if !ok || !r.Outcome.Final() || at.Before(since) || r.Version != version {
				continue
			}
			ev = hotEvent{Outcome: string(r.Outcome), Version: version, Message: e.DisplayMessage, Time: at}
			return nil
		}
		return fmt.Errorf("no outcome yet for the hot upgrade to %s", version)
	})
	if err != nil {
		j.t.Fatalf("%v\n%s", err, j.describe(j.Alloc))
	}
	return ev
}

var pidCountPattern = regexp.MustCompile(` pid (\d+) count (\d+)`)

// pidCount reads the OS pid and the counter from the app's answer.
func pidCount(t testing.TB, body string) (int, int) {
	t.Helper()
	m := pidCountPattern.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no pid and count in %q", body)
	}
	pid, _ := strconv.Atoi(m[1])
	n, _ := strconv.Atoi(m[2])
	return pid, n
}

// load sends GET / at a constant rate, bounded in requests and time, and
// counts every request that fails: a connection error, a timeout or a
// status other than 200.
type load struct {
	stop     chan struct{}
	done     chan struct{}
	ok, fail atomic.Int64
	mu       sync.Mutex
	firstErr error
}

func startLoad(port, perSecond int, max time.Duration) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		deadline := time.After(max)
		for sent := 0; sent < perSecond*int(max/time.Second); sent++ {
			select {
			case <-l.stop:
				wg.Wait()
				return
			case <-deadline:
				wg.Wait()
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Get(url)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				if err != nil {
					l.fail.Add(1)
					l.mu.Lock()
					if l.firstErr == nil {
						l.firstErr = err
					}
					l.mu.Unlock()
					return
				}
				l.ok.Add(1)
			}()
		}
		wg.Wait()
	}()
	return l
}

// Stop ends the load and returns the counts.
func (l *load) Stop() (ok, failed int64, first error) {
	close(l.stop)
	<-l.done
	return l.ok.Load(), l.fail.Load(), l.firstErr
}

// hotUnderLoad hot-upgrades the job's allocation to version from tarball
// while 100 requests a second go to port, and fails the test unless it
// succeeds with no failed request. It returns how many were served.
func (j *job) hotUnderLoad(port int, version, tarball string) int64 {
	t := j.t
	t.Helper()
	l := startLoad(port, 100, 60*time.Second)
	time.Sleep(time.Second)
	asked := time.Now()
	setHot(t, j.ID, map[string]hotTarget{j.Alloc: target(t, version, tarball)})
	ev := j.waitHot("node", version, asked.Add(-time.Second))
	if ev.Outcome != "succeeded" {
		l.Stop()
		t.Fatalf("hot upgrade to %s: %s: %s", version, ev.Outcome, ev.Message)
	}
	t.Logf("event: %s", ev.Message)
	time.Sleep(time.Second)
	ok, failed, first := l.Stop()
	t.Logf("load at 100 req/s across the upgrade: %d served, %d failed", ok, failed)
	if failed > 0 || ok < 150 {
		t.Errorf("under load: %d requests failed (first: %v), %d succeeded", failed, first, ok)
	}
	return ok
}

// TestHotUpgrade upgrades a running node in place, for an Erlang (relx) and
// an Elixir (mix) release, under constant load, and then crashes it.
func TestHotUpgrade(t *testing.T) {
	cases := []struct {
		kind, task string
		// state is the counter's state after the upgrade: a map now.
		state string
		// dropped and added are the modules 0.2.0 drops and adds.
		dropped, added string
	}{
		{"relx", "hello_erl", "upgraded => true", "hello_erl_legacy", "hello_erl_shape"},
		{"mix", "hello_ex", "upgraded: true", "HelloEx.Legacy", "HelloEx.Shape"},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			v1 := tc.task + "-0.1.0.tar.gz"
			j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "hot-"+tc.kind), map[string]string{
				"task":     tc.task,
				"source":   releases.URL + "/" + v1,
				"sha256":   releases.SHA256(t, v1),
				"hot":      "true",
				"restarts": "2",
				"env":      `{HELLO_GREETING = "hi-from-runtime-config"}`,
			})
			port := j.port("http")
			body := waitHTTP(t, port, "/", 60*time.Second)
			if !strings.Contains(body, tc.task+" 0.1.0") {
				t.Fatalf("before the upgrade: %q", body)
			}
			pid, _ := pidCount(t, body)
			if loaded, _ := get(port, "/loaded"); !strings.Contains(loaded, tc.dropped+"\n") {
				t.Fatalf("0.1.0 has not loaded %s: %q", tc.dropped, loaded)
			}

			// 1 and 2: the same OS process takes the new code and keeps
			// its state, with no failed request under load.
			ok := j.hotUnderLoad(port, "0.2.0", tc.task+"-0.2.0.tar.gz")
			body, err := get(port, "/")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(body, tc.task+" 0.2.0") {
				t.Errorf("after the upgrade: %q, want version 0.2.0", body)
			}
			pid2, count := pidCount(t, body)
			if pid2 != pid {
				t.Errorf("pid changed from %d to %d: not an in-place upgrade", pid, pid2)
			}
			if count < int(ok) {
				t.Errorf("count %d after %d requests: the counter lost its state", count, ok)
			}
			if st, _ := get(port, "/state"); !strings.Contains(st, tc.state) {
				t.Errorf("state after the upgrade: %q, want %q", st, tc.state)
			}
			// The package came from beamctl relup: the module 0.2.0 drops
			// is deleted, the one it adds loaded.
			if loaded, _ := get(port, "/loaded"); strings.Contains(loaded, tc.dropped+"\n") || !strings.Contains(loaded, tc.added+"\n") {
				t.Errorf("loaded modules after the upgrade: %q; want %s and no %s", loaded, tc.added, tc.dropped)
			}
			// 3: runtime configuration (runtime.exs) survives.
			if tc.kind == "mix" && !strings.HasPrefix(body, "hi-from-runtime-config from") {
				t.Errorf("runtime.exs value lost in the upgrade: %q", body)
			}

			// 6: a crash restart boots the upgraded version.
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			err = waitFor(60*time.Second, func() error {
				b, err := get(port, "/")
				if err != nil {
					return err
				}
				if p, _ := pidCount(t, b); p == pid {
					return fmt.Errorf("still the old pid")
				}
				body = b
				return nil
			})
			if err != nil {
				t.Fatalf("no restart after kill -9: %v\n%s", err, j.describe(j.Alloc))
			}
			if !strings.Contains(body, tc.task+" 0.2.0") {
				t.Errorf("after a crash restart: %q, want the upgraded version 0.2.0", body)
			}
			if tc.kind == "mix" && !strings.HasPrefix(body, "hi-from-runtime-config from") {
				t.Errorf("runtime.exs value lost after the restart: %q", body)
			}
		})
	}
}

// TestHotUpgradeFailures covers the upgrades that must not go through: each
// leaves the node serving the old version, in the same OS process.
func TestHotUpgradeFailures(t *testing.T) {
	cases := []struct {
		name, task, tarball, version string
		env                          string
		outcome                      string
		message                      string
	}{
		// 4: no up-from path for the running version.
		{"no path", "hello_erl", "hello_erl-0.3.0.tar.gz", "0.3.0", "", "refused", "no upgrade path from 0.1.0"},
		// 5: code_change crashes past the point of no return.
		{"code_change", "hello_erl", "hello_erl-0.2.0.tar.gz", "0.2.0", `{HELLO_FAIL_UPGRADE_INDEX = "0"}`, "failed", "code_change_failed"},
		{"code_change mix", "hello_ex", "hello_ex-0.2.0.tar.gz", "0.2.0", `{HELLO_FAIL_UPGRADE_INDEX = "0"}`, "failed", "code_change_failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v1 := tc.task + "-0.1.0.tar.gz"
			vars := map[string]string{
				"task":   tc.task,
				"source": releases.URL + "/" + v1,
				"sha256": releases.SHA256(t, v1),
				"hot":    "true",
			}
			if tc.env != "" {
				vars["env"] = tc.env
			}
			j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "hotfail"), vars)
			port := j.port("http")
			pid, _ := pidCount(t, waitHTTP(t, port, "/", 60*time.Second))

			asked := time.Now()
			setHot(t, j.ID, map[string]hotTarget{j.Alloc: target(t, tc.version, tc.tarball)})
			ev := j.waitHot("node", tc.version, asked.Add(-time.Second))
			if ev.Outcome != tc.outcome || !strings.Contains(ev.Message, tc.message) {
				t.Fatalf("got %s: %q; want %s mentioning %q", ev.Outcome, ev.Message, tc.outcome, tc.message)
			}
			t.Logf("event: %s", ev.Message)
			body := waitHTTP(t, port, "/", 30*time.Second)
			if !strings.Contains(body, tc.task+" 0.1.0") {
				t.Errorf("after the failed upgrade the node serves %q, want 0.1.0", body)
			}
			if p, _ := pidCount(t, body); p != pid {
				t.Errorf("pid changed from %d to %d", pid, p)
			}
			if st := j.task("node"); st.State != "running" || st.Restarts != 0 {
				t.Errorf("task is %s after %d restarts, want running without restarts", st.State, st.Restarts)
			}
		})
	}
}

// TestHotUpgradeShipment checks that a Gleam erlang-shipment, which has no
// release_handler release, refuses a hot upgrade clearly and keeps running.
func TestHotUpgradeShipment(t *testing.T) {
	const tarball = "hello_gleam-0.1.0.tar.gz"
	j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "hotgleam"), map[string]string{
		"task": "hello_gleam", "source": releases.URL + "/" + tarball, "sha256": releases.SHA256(t, tarball), "hot": "true",
	})
	port := j.port("http")
	waitHTTP(t, port, "/", 60*time.Second)
	asked := time.Now()
	setHot(t, j.ID, map[string]hotTarget{j.Alloc: target(t, "0.2.0", tarball)})
	ev := j.waitHot("node", "0.2.0", asked.Add(-time.Second))
	if ev.Outcome != "refused" || !strings.Contains(ev.Message, "erlang-shipment") || !strings.Contains(ev.Message, "full release") {
		t.Fatalf("got %s: %q; want a refusal that names the erlang-shipment and a full release", ev.Outcome, ev.Message)
	}
	if body := waitHTTP(t, port, "/", 10*time.Second); !strings.Contains(body, "hello from hello_gleam") {
		t.Errorf("after the refusal: %q", body)
	}
}

// TestHotUpgradePluginRestart kills the plugin as soon as an upgrade has
// started. The restarted plugin must finish the job: the node ends up on
// the new version, permanent, in the same OS process.
func TestHotUpgradePluginRestart(t *testing.T) {
	const v1, v2 = "hello_ex-0.1.0.tar.gz", "hello_ex-0.2.0.tar.gz"
	j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "hotplugin"), map[string]string{
		"task": "hello_ex", "source": releases.URL + "/" + v1, "sha256": releases.SHA256(t, v1), "hot": "true",
	})
	port := j.port("http")
	pid, _ := pidCount(t, waitHTTP(t, port, "/", 60*time.Second))

	old := pluginPid(t)
	asked := time.Now()
	setHot(t, j.ID, map[string]hotTarget{j.Alloc: target(t, "0.2.0", v2)})
	err := waitEvery(5*time.Millisecond, 30*time.Second, func() error {
		for _, e := range j.task("node").Events {
			if _, ok := hotspec.ReportOf(e.Details); ok && time.Unix(0, e.Time).After(asked.Add(-time.Second)) {
				return nil
			}
		}
		return fmt.Errorf("the upgrade has not started")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the plugin (pid %d) once the upgrade had started", old)

	err = waitFor(90*time.Second, func() error {
		body, err := get(port, "/")
		if err != nil {
			return err
		}
		if !strings.Contains(body, "hello_ex 0.2.0") {
			return fmt.Errorf("serves %q", body)
		}
		out, err := cluster.Nomad("alloc", "fs", j.Alloc, "node/local/release/releases/start_erl.data")
		if err != nil {
			return err
		}
		if !strings.HasSuffix(strings.TrimSpace(out), " 0.2.0") {
			return fmt.Errorf("start_erl.data is %q: 0.2.0 is not permanent", out)
		}
		if p, _ := pidCount(t, body); p != pid {
			return permanent{fmt.Errorf("pid %d became %d", pid, p)}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after the plugin restart: %v\n%s", err, j.describe(j.Alloc))
	}
	if st := j.task("node"); st.Restarts != 0 {
		t.Errorf("the task restarted %d times", st.Restarts)
	}
}
