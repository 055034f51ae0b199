//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// The hostile-release suite's cases on the network: a local process that
// squats on a node's name in the port mapper, a fake Consul instance of a
// clustering job, and a release server that drips.

// TestHostileEPMDSquatter registers a node's name with the driver's port
// mapper from another local process, before and after the node starts and
// across a plugin restart: every attempt is refused, and peers are always
// given the node's real port.
func TestHostileEPMDSquatter(t *testing.T) {
	v := newVictim(t)
	ensurePortMapper(t)
	const tarball = "hello_ex-0.1.0.tar.gz"
	name := fmt.Sprintf("squat-%d", time.Now().UnixNano()%1_000_000)
	const squatPort = 4242

	squat := func(when string) {
		t.Helper()
		res, err := epmdAlive2(name, squatPort)
		if err != nil {
			t.Fatalf("ALIVE2 for %s %s: %v", name, when, err)
		}
		if res != 1 {
			t.Fatalf("ALIVE2 for %s at port %d %s: result %d, want 1 (refused)", name, squatPort, when, res)
		}
	}
	squat("before the node starts")

	j := submitJob(t, "hostile.nomad.hcl", uniqueJob(t, "squat"), map[string]string{
		"task": "hello_ex", "source": releases.URL + "/" + tarball, "sha256": releases.SHA256(t, tarball),
		"node_name": name,
	})
	j.Alloc = j.waitAlloc("running", 3*time.Minute)
	body := waitHTTP(t, j.port("http"), "/", 60*time.Second)
	if !strings.Contains(body, "on "+name+"@127.0.0.1") {
		t.Fatalf("GET / = %q, want the node %s@127.0.0.1", body, name)
	}
	dist := j.port("dist")
	eventWith(t, j, "Started hello_ex 0.1.0 (mix release) as pid ", ", node "+name+"@127.0.0.1")

	portIs := func(when string) {
		t.Helper()
		err := waitFor(60*time.Second, func() error {
			p, err := epmdPortPlease(name)
			if err != nil {
				return err
			}
			if p != dist {
				return fmt.Errorf("PORT_PLEASE2 %s gives port %d, want the node's dist port %d", name, p, dist)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	portIs("with the node running")
	squat("while the node runs")
	portIs("after a squat while the node runs")

	// A new plugin instance rebuilds the table from the recovered task.
	old := pluginPid(t)
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(60*time.Second, func() error {
		if p := findPluginPid(); p == 0 || p == old {
			return fmt.Errorf("no new plugin process yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	portIs("after the plugin restarted")
	squat("after the plugin restarted")
	portIs("after a squat once the plugin restarted")
	if a := j.alloc(); a.ClientStatus != "running" || taskState(a, "node").Restarts != 0 {
		t.Errorf("allocation %s, %d restarts, want it running as it was", a.ClientStatus, taskState(a, "node").Restarts)
	}
	waitHTTP(t, j.port("http"), "/", 10*time.Second)

	// Each plugin instance logged its refusal.
	const warn = "epmd: refused to register a node the driver did not start"
	var refusals []string
	for _, l := range strings.Split(pluginLog(t), "\n") {
		if strings.Contains(l, warn) && strings.Contains(l, "name="+name) {
			refusals = append(refusals, l)
		}
	}
	t.Logf("refusals logged:\n%s", strings.Join(refusals, "\n"))
	if len(refusals) < 2 {
		t.Errorf("the plugin log has %d %q lines for %s, want one per plugin instance:\n%s",
			len(refusals), warn, name, strings.Join(refusals, "\n"))
	}
	if logLine(strings.Join(refusals, "\n"), `reason="not a node the driver started"`) == "" ||
		logLine(strings.Join(refusals, "\n"), fmt.Sprintf(`reason="port %d is not the node's port %d"`, squatPort, dist)) == "" {
		t.Errorf("the refusals do not give both reasons (unknown name, wrong port):\n%s", strings.Join(refusals, "\n"))
	}
	v.check(t)
	v.checkUnquoted(t, j)
}

// ensurePortMapper makes sure that the plugin's port mapper listens: it
// starts with the first task that has a node name. A task whose release
// only sleeps does.
func ensurePortMapper(t *testing.T) {
	t.Helper()
	if c, err := net.DialTimeout("tcp", epmdAddr(), time.Second); err == nil {
		c.Close()
		return
	}
	t.Logf("the port mapper does not listen yet: a warm-up task with a node name starts it")
	srv := newHostileServer(t)
	body := tarGz(t, relxTree("warmup", "#!/bin/sh\nexec sleep 300\n", true)...)
	src := srv.add("warmup.tar.gz", body)
	j := submitJob(t, "hostile.nomad.hcl", uniqueJob(t, "warmup"), map[string]string{
		"task": "warmup", "source": src, "sha256": sha(body),
	})
	err := waitFor(2*time.Minute, func() error {
		c, err := net.DialTimeout("tcp", epmdAddr(), time.Second)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	})
	if err != nil {
		t.Fatalf("the port mapper never listened: %v", err)
	}
	_, _ = cluster.Nomad("job", "stop", "-purge", j.ID)
}

// TestHostileFakeConsulPeer registers, under a clustering job's service
// name, a passing Consul instance that no allocation of the job backs, as
// any workload that may write the name could: the driver must never dial
// it, and must log that it refused it.
func TestHostileFakeConsulPeer(t *testing.T) {
	v := newVictim(t)
	const tarball = "hello_ex-0.1.0.tar.gz"
	id := uniqueJob(t, "fakepeer")
	service := id + "-dist"
	j := submitJob(t, "hostile.nomad.hcl", id, map[string]string{
		"task": "hello_ex", "source": releases.URL + "/" + tarball, "sha256": releases.SHA256(t, tarball),
		"cluster_service": service,
	})
	j.Alloc = j.waitAlloc("running", 3*time.Minute)
	waitHTTP(t, j.port("http"), "/", 60*time.Second)
	waitConsulPassing(t, service, j.port("dist"))

	lure := newConnCounter(t)
	fakeID := "fake-" + id
	err := cluster.ConsulAPI.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		ID: fakeID, Name: service, Address: "127.0.0.1", Port: lure.port(),
		Check: &consul.AgentServiceCheck{CheckID: fakeID + "-ttl", Name: "always passing", TTL: "10m", Status: "passing"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.ConsulAPI.Agent().ServiceDeregister(fakeID) })
	registered := time.Now()
	waitConsulPassing(t, service, lure.port())

	line := waitPluginLog(t, 60*time.Second, "[WARN]",
		fmt.Sprintf("refusing cluster peer 127.0.0.1:%d: not an allocation of job %s in namespace default", lure.port(), id))
	t.Logf("refusal logged %s after the registration: %s", time.Since(registered).Round(time.Second), line)
	if d := 25*time.Second - time.Since(registered); d > 0 {
		time.Sleep(d)
	}
	if got := lure.accepted(); len(got) > 0 {
		t.Errorf("the unverified instance was dialed %d times: %v", len(got), got)
	}
	if a := j.alloc(); a.ClientStatus != "running" {
		t.Errorf("allocation is %s, want running", a.ClientStatus)
	}
	eventWith(t, j, "Started hello_ex 0.1.0 (mix release) as pid ")
	for _, e := range taskOf(t, j).Events {
		if strings.Contains(e.DisplayMessage, "Clustering is off") {
			t.Errorf("clustering is off, so the refusal proves nothing: %s", e.DisplayMessage)
		}
	}
	v.check(t)
	v.checkUnquoted(t, j)
}

// TestHostileSlowDrip serves a release that announces 10 MiB and then
// sends a byte every 2 s: the download must be given up within the stall
// window, not hold the task (and the cache entry's lock) forever.
func TestHostileSlowDrip(t *testing.T) {
	start := time.Now()
	v := newVictim(t)
	srv := newHostileServer(t)
	srv.mux.HandleFunc("/drip.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(10<<20))
		w.WriteHeader(http.StatusOK)
		fl, _ := w.(http.Flusher)
		for {
			if _, err := w.Write([]byte{0x1f}); err != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
			select {
			case <-r.Context().Done():
				return
			case <-srv.done:
				return
			case <-time.After(2 * time.Second):
			}
		}
	})
	src := srv.srv.URL + "/drip.tar.gz"
	j := submitHostile(t, "drip", map[string]string{"task": "hostile", "source": src, "sha256": strings.Repeat("d1", 32)})
	eventWith(t, j, "Fetch failed: fetch "+src+": the download was slower than 10 KiB/s for 30s (")
	if took := time.Since(start); took > 150*time.Second {
		t.Errorf("the slow download failed the task after %s, want well under 2.5 min", took.Round(time.Second))
	}
	v.check(t)
	v.checkUnquoted(t, j)
}
