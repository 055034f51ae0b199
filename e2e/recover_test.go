//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRecover kills the plugin with SIGKILL, then restarts the Nomad agent,
// and checks each time that the node keeps running with the same OS pid and
// that the driver reattaches to it: the job still stops gracefully.
func TestRecover(t *testing.T) {
	const tarball = "hello_erl-0.1.0.tar.gz"
	j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "recover"), map[string]string{
		"task":   "hello_erl",
		"source": releases.URL + "/" + tarball,
		"sha256": releases.SHA256(t, tarball),
	})
	port := j.port("http")
	pid := nodePid(t, waitHTTP(t, port, "/", 30*time.Second))

	t.Run("plugin killed", func(t *testing.T) {
		old := pluginPid(t)
		if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Nomad starts a new plugin instance and calls RecoverTask.
		err := waitFor(60*time.Second, func() error {
			if p := findPluginPid(); p == 0 || p == old {
				return fmt.Errorf("no new plugin process yet")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		checkSameNode(t, j, port, pid)
	})

	t.Run("agent restarted", func(t *testing.T) {
		old := pluginPid(t)
		if err := cluster.RestartNomad(); err != nil {
			t.Fatal(err)
		}
		if p := findPluginPid(); p == old {
			t.Fatalf("plugin pid %d survived an agent restart", p)
		}
		checkSameNode(t, j, port, pid)
	})

	// The recovered handle still controls the node: a stop is graceful.
	if _, err := cluster.Nomad("job", "stop", "-detach", j.ID); err != nil {
		t.Fatal(err)
	}
	j.waitAlloc("complete", 60*time.Second)
	j.waitLogs("node", "hello_erl shutting down gracefully")
	if syscall.Kill(pid, 0) == nil {
		t.Fatalf("node pid %d still exists after the job stopped", pid)
	}
}

// checkSameNode checks that the allocation runs, was not restarted, and that
// the app answers from the same OS process.
func checkSameNode(t *testing.T, j *job, port, pid int) {
	t.Helper()
	err := waitFor(60*time.Second, func() error {
		a := j.alloc()
		st := taskState(a, "node")
		if a.ClientStatus != "running" || st.State != "running" {
			return fmt.Errorf("allocation is %s, task %s", a.ClientStatus, st.State)
		}
		if st.Restarts != 0 {
			return fmt.Errorf("task restarted %d times", st.Restarts)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, j.describe(j.Alloc))
	}
	body := waitHTTP(t, port, "/", 10*time.Second)
	if got := nodePid(t, body); got != pid {
		t.Fatalf("node pid is %d, was %d: the node was restarted, not recovered", got, pid)
	}
	// The node can still be found by name: the restarted driver's port
	// mapper knows it from the recovered task state.
	node := nodePattern.FindStringSubmatch(body)[1]
	out, err := cluster.Nomad("alloc", "exec", "-task", "node", j.Alloc, "bin/hello_erl", "eval", "node().")
	if err != nil || !strings.Contains(out, node) {
		t.Fatalf("eval on the recovered node printed %q (%v), want %s", out, err, node)
	}
	// Recovery is only real if the driver can reach the node again: fresh
	// stats flow through the reattached executor. A stale sample from
	// before the recovery does not count.
	j.waitStats(time.Now())
}

var pidPattern = regexp.MustCompile(`pid (\d+)`)

func nodePid(t testing.TB, body string) int {
	t.Helper()
	m := pidPattern.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("response %q has no pid", body)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

func pluginPid(t testing.TB) int {
	t.Helper()
	p := findPluginPid()
	if p == 0 {
		t.Fatal("no nomad-driver-beam plugin process found")
	}
	return p
}

// findPluginPid returns the pid of the plugin process that the cluster's
// Nomad runs, leaving out the executors, which run the same binary.
func findPluginPid() int {
	bin := filepath.Join(cluster.Dir, "plugins", "nomad-driver-beam")
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		exe, _ := os.Readlink(p + "/exe")
		if exe != bin {
			continue
		}
		cmdline, _ := os.ReadFile(p + "/cmdline")
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 1 && args[1] == "executor" {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(p))
		return pid
	}
	return 0
}

// processesNamed returns the pids of processes whose command name is name.
func processesNamed(name string) []int {
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		comm, _ := os.ReadFile(p + "/comm")
		if strings.TrimSpace(string(comm)) == name {
			pid, _ := strconv.Atoi(filepath.Base(p))
			pids = append(pids, pid)
		}
	}
	return pids
}
