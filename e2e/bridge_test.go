//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// TestBridge runs a job in bridge mode on two clients, each in a network
// namespace of its own (see bridgeHost): each allocation answers HTTP on
// its mapped host port and registers in Consul, the two nodes form one
// cluster through Consul across the clients, and a hot upgrade reaches
// both in place.
func TestBridge(t *testing.T) {
	bc, err := StartBridge(cluster.Root, filepath.Join(cluster.Dir, "bridge"), stores, 2, 30000, 32767, releases.port())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bc.Stop)
	// The job helpers talk to the global cluster; this test is not
	// parallel, so nothing else uses it meanwhile.
	saved := cluster
	cluster = bc
	t.Cleanup(func() { cluster = saved })

	const v1, v2 = "hello_ex-0.1.0.tar.gz", "hello_ex-0.2.0.tar.gz"
	id := uniqueJob(t, "bridge")
	j := submitJob(t, "beam.nomad.hcl", id, map[string]string{
		"bridge":          "true",
		"task":            "hello_ex",
		"source":          releases.URL + "/" + v1,
		"sha256":          releases.SHA256(t, v1),
		"count":           "2",
		"cluster_service": id + "-dist",
		"hot":             "true",
	})
	allocs := j.runningAllocs(2)
	addrs := map[string]string{}
	for _, a := range allocs {
		for _, p := range allocPorts(a.alloc()) {
			if p.Label == "http" {
				addrs[a.Alloc] = fmt.Sprintf("%s:%d", p.HostIP, p.Value)
			}
		}
		if !strings.HasPrefix(addrs[a.Alloc], "10.201.") {
			t.Fatalf("allocation %s has HTTP at %q, want a bridge client's address", a.Alloc, addrs[a.Alloc])
		}
	}

	t.Run("answers on the mapped port and registers in Consul", func(t *testing.T) {
		for _, a := range allocs {
			body := waitGet(t, addrs[a.Alloc], 60*time.Second)
			if !strings.Contains(body, "0.1.0") {
				t.Errorf("%s answered %q, want version 0.1.0", addrs[a.Alloc], body)
			}
			_, port, _ := strings.Cut(addrs[a.Alloc], ":")
			var p int
			fmt.Sscan(port, &p)
			waitConsulPassing(t, id, p)
		}
	})

	t.Run("nodes on two clients form one cluster", func(t *testing.T) {
		err := waitFor(90*time.Second, func() error {
			for _, a := range allocs {
				out, err := bc.Nomad("alloc", "exec", "-task", "node", a.Alloc,
					"bin/hello_ex", "rpc", `IO.puts("peers=" <> Enum.join(Node.list(), ","))`)
				if err != nil {
					return fmt.Errorf("rpc in %s: %v: %q", a.Alloc, err, out)
				}
				if strings.Count(out, "@10.201.") != 1 {
					return fmt.Errorf("allocation %s sees %q, want the other node", a.Alloc[:8], strings.TrimSpace(out))
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, j.describe(allocs[0].Alloc))
		}
	})

	t.Run("hot upgrade in place", func(t *testing.T) {
		before := map[string]int{}
		for _, a := range allocs {
			pid, _ := pidCount(t, waitGet(t, addrs[a.Alloc], 10*time.Second))
			before[a.Alloc] = pid
		}
		since := time.Now()
		setHot(t, id, map[string]hotTarget{hotspec.AllKey: target(t, "0.2.0", v2)})
		for _, a := range allocs {
			if ev := a.waitHot("node", "0.2.0", since); ev.Outcome != "succeeded" {
				t.Fatalf("hot upgrade of %s: %s: %s", a.Alloc, ev.Outcome, ev.Message)
			}
			body := waitGet(t, addrs[a.Alloc], 10*time.Second)
			pid, _ := pidCount(t, body)
			if !strings.Contains(body, "0.2.0") || pid != before[a.Alloc] {
				t.Errorf("after the upgrade %s answers %q; want 0.2.0 from pid %d", a.Alloc, body, before[a.Alloc])
			}
		}
	})
}

// waitGet waits until GET / at addr (HOST:PORT) answers 200.
func waitGet(t *testing.T, addr string, timeout time.Duration) string {
	t.Helper()
	c := &http.Client{Timeout: 3 * time.Second}
	var body string
	err := waitFor(timeout, func() error {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", addr, resp.Status)
		}
		body = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}
