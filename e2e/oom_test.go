//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestOOMKilled makes a node allocate past its memory limit (256 MB in
// beam.nomad.hcl). The kernel kills it, and Nomad must hear that it was
// the OOM killer: the universal executor never says so, so the driver
// reads the task's memory cgroup.
func TestOOMKilled(t *testing.T) {
	const tarball = "hello_ex-0.1.0.tar.gz"
	id := uniqueJob(t, "oom")
	j := runJob(t, "beam.nomad.hcl", id, map[string]string{
		"task":   "hello_ex",
		"source": releases.URL + "/" + tarball,
		"sha256": releases.SHA256(t, tarball),
	})
	waitHTTP(t, j.port("http"), "/", 60*time.Second)
	// The call dies with the node; what it says does not matter.
	_, _ = cluster.Nomad("alloc", "exec", "-task", "node", j.Alloc,
		"bin/hello_ex", "rpc", `IO.puts(byte_size(:binary.copy(<<0>>, 1_000_000_000)))`)

	var details map[string]string
	var code int
	err := waitFor(60*time.Second, func() error {
		for _, e := range j.task("node").Events {
			if e.Type == "Terminated" {
				details, code = e.Details, e.ExitCode
				return nil
			}
		}
		return fmt.Errorf("the node has not ended")
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, j.describe(j.Alloc))
	}
	if details["oom_killed"] != "true" {
		t.Errorf("Terminated event details %v, exit code %d: want oom_killed true\n%s", details, code, j.describe(j.Alloc))
	}
}
