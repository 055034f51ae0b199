//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is what /proc says of one process.
type proc struct {
	pid                   int
	comm, cmdline, cgroup string
	uid                   string // real, effective, saved, fs
	groups                string
	noNewPrivs            string
	netns                 string
}

func readProc(pid int) (proc, bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return proc{}, false
	}
	p := proc{pid: pid}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			p.comm = v
		case "Uid":
			p.uid = strings.Join(strings.Fields(v), " ")
		case "Groups":
			p.groups = v
		case "NoNewPrivs":
			p.noNewPrivs = v
		}
	}
	cmd, _ := os.ReadFile(dir + "/cmdline")
	p.cmdline = strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " ")
	cg, _ := os.ReadFile(dir + "/cgroup")
	p.cgroup = string(cg)
	p.netns, _ = os.Readlink(dir + "/ns/net")
	return p, true
}

// procsOf lists the processes in an allocation's cgroups.
func procsOf(allocID string) []proc {
	var out []proc
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok && strings.Contains(p.cgroup, allocID) {
			out = append(out, p)
		}
	}
	return out
}

// nobody is how /proc shows a process that runs as nobody: uid 65534 in
// all four places, and no group but nogroup.
const nobodyUID = "65534 65534 65534 65534"

func checkConfined(t *testing.T, what string, p proc, netns string) {
	t.Helper()
	if p.uid != nobodyUID {
		t.Errorf("%s (pid %d, %s) runs as uid %q, want nobody", what, p.pid, p.cmdline, p.uid)
	}
	if p.groups != "65534" {
		t.Errorf("%s (pid %d) has groups %q, want only 65534 (no group 0)", what, p.pid, p.groups)
	}
	if p.noNewPrivs != "1" {
		t.Errorf("%s (pid %d) has NoNewPrivs %q: it is not under Landlock", what, p.pid, p.noNewPrivs)
	}
	if netns != "" && p.netns != netns {
		t.Errorf("%s (pid %d) is in network namespace %s, the node in %s", what, p.pid, p.netns, netns)
	}
}

// TestIsolation runs a task with no user: it must run as nobody, confined
// to its own directories, and the driver's calls into it must run in the
// task too.
func TestIsolation(t *testing.T) {
	const tarball = "hello_ex-0.1.0.tar.gz"
	// A world-readable file outside the task and the system paths. Under
	// /root it would prove nothing: nobody cannot enter /root anyway.
	outside, err := os.MkdirTemp("", "beam-isolation-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outside) })
	if err := os.Chmod(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "host-file")
	if err := os.WriteFile(secret, []byte("not for tasks\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	marker := fmt.Sprintf("600.%d", time.Now().UnixNano()%1_000_000)
	j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "iso"), map[string]string{
		"task":   "hello_ex",
		"source": releases.URL + "/" + tarball,
		"sha256": releases.SHA256(t, tarball),
		// A pre-command that leaves a process behind, out of its
		// process group: it must not outlive the pre-command.
		"pre_commands": fmt.Sprintf(`[["/bin/sh", "-c", "setsid sleep %s < /dev/null > /dev/null 2>&1 & echo left a sleeper"]]`, marker),
	})
	waitHTTP(t, j.port("http"), "/", 60*time.Second)

	var node proc
	for _, p := range procsOf(j.Alloc) {
		if p.comm == "beam.smp" {
			node = p
		}
		if strings.Contains(p.cmdline, "sleep "+marker) {
			t.Errorf("the pre-command's setsid child outlived it: pid %d %s", p.pid, p.cmdline)
		}
	}
	if node.pid == 0 {
		t.Fatalf("no beam.smp in the allocation's cgroup\n%s", j.describe(j.Alloc))
	}
	t.Run("node runs as nobody under Landlock", func(t *testing.T) {
		checkConfined(t, "beam.smp", node, "")
	})

	t.Run("node cannot read host files", func(t *testing.T) {
		out, err := cluster.Nomad("alloc", "exec", "-task", "node", j.Alloc,
			"bin/hello_ex", "rpc", fmt.Sprintf(`IO.inspect(File.read(%q)); IO.inspect(File.read("/etc/hosts") |> elem(0))`, secret))
		if err != nil {
			t.Fatalf("rpc: %v\n%s", err, out)
		}
		if strings.Contains(out, "not for tasks") || !strings.Contains(out, "{:error, :eacces}") {
			t.Errorf("the node read %s, or failed otherwise: %s", secret, out)
		}
		if !strings.Contains(out, ":ok") {
			t.Errorf("the node could not read /etc/hosts, a system path: %s", out)
		}
		out, err = cluster.Nomad("alloc", "exec", "-task", "node", j.Alloc, "cat", secret)
		if err == nil || strings.Contains(out, "not for tasks") {
			t.Errorf("nomad alloc exec read %s: %v\n%s", secret, err, out)
		}
	})

	t.Run("control calls run in the task", func(t *testing.T) {
		// Stop the node, so that a beam-health call waits for it and can
		// be seen in /proc while it runs.
		if err := syscall.Kill(node.pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer syscall.Kill(node.pid, syscall.SIGCONT)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_, _ = cluster.Nomad("alloc", "exec", "-task", "node", j.Alloc, "beam-health")
		}()
		var calls []proc
		deadline := time.Now().Add(8 * time.Second)
		for len(calls) == 0 && time.Now().Before(deadline) {
			ents, _ := os.ReadDir("/proc")
			for _, e := range ents {
				pid, err := strconv.Atoi(e.Name())
				if err != nil {
					continue
				}
				if p, ok := readProc(pid); ok && p.comm == "erl_call" && strings.Contains(p.cmdline, "app-"+j.Alloc[:8]) {
					calls = append(calls, p)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = syscall.Kill(node.pid, syscall.SIGCONT)
		<-done
		if len(calls) == 0 {
			t.Fatal("saw no erl_call for the node while beam-health ran")
		}
		for _, c := range calls {
			checkConfined(t, "the beam-health erl_call", c, node.netns)
			if !strings.Contains(c.cgroup, j.Alloc) {
				t.Errorf("the beam-health erl_call (pid %d) is not in the task's cgroup:\n%s", c.pid, c.cgroup)
			}
		}
	})
}

// TestPreCommandInTask watches a pre-command while it runs: it must be in
// the task's cgroup, as nobody, under Landlock.
func TestPreCommandInTask(t *testing.T) {
	const tarball = "hello_erl-0.1.0.tar.gz"
	j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "prein"), map[string]string{
		"task":         "hello_erl",
		"source":       releases.URL + "/" + tarball,
		"sha256":       releases.SHA256(t, tarball),
		"pre_commands": `[["/bin/sleep", "6"]]`,
	})
	var seen []proc
	deadline := time.Now().Add(90 * time.Second)
	for len(seen) == 0 && time.Now().Before(deadline) {
		if j.Alloc == "" {
			allocs, _, err := cluster.NomadAPI.Jobs().Allocations(j.ID, false, nil)
			if err != nil || len(allocs) == 0 {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			j.Alloc = allocs[0].ID
		}
		for _, p := range procsOf(j.Alloc) {
			if p.comm == "sleep" {
				seen = append(seen, p)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(seen) == 0 {
		t.Fatal("never saw the pre-command in the allocation's cgroup")
	}
	checkConfined(t, "the pre-command", seen[0], "")
	j.Alloc = j.waitAlloc("running", 2*time.Minute)
}

// TestRootRefused: a job that asks for root is refused unless the
// operator allows it (allow_root), with an event that says so.
func TestRootRefused(t *testing.T) {
	t.Parallel()
	const tarball = "hello_erl-0.1.0.tar.gz"
	j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "root"), map[string]string{
		"task":   "hello_erl",
		"source": releases.URL + "/" + tarball,
		"sha256": releases.SHA256(t, tarball),
		"user":   "root",
	})
	j.Alloc = j.waitAlloc("failed", 2*time.Minute)
	ev := strings.Join(j.events("node"), "\n")
	if !strings.Contains(ev, `task user "root" is root`) || !strings.Contains(ev, "allow_root") {
		t.Errorf("the refusal does not say why:\n%s", ev)
	}
}
