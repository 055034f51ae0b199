//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/peers"
)

// job is a Nomad job that a test submitted.
type job struct {
	t      testing.TB
	ID     string
	Alloc  string
	Cookie string // the distribution cookie in the job's Nomad Variable
}

// runJob submits a jobspec from testdata with HCL2 variables and waits until
// its one allocation runs.
func runJob(t testing.TB, spec, id string, vars map[string]string) *job {
	t.Helper()
	j := submitJob(t, spec, id, vars)
	j.Alloc = j.waitAlloc("running", 3*time.Minute)
	return j
}

// submitJob submits a jobspec from testdata with HCL2 variables, with a
// fresh cookie in the job's Nomad Variable.
func submitJob(t testing.TB, spec, id string, vars map[string]string) *job {
	t.Helper()
	return submitJobWith(t, spec, id, vars, nil)
}

// attachClusterPolicy gives the job's workload identities the policy that
// clustering needs, the one the driver's event names: read-job in the
// job's namespace, to check that a Consul instance is one of the job's
// allocations.
func attachClusterPolicy(t testing.TB, id string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "beam-cluster.hcl")
	if err := os.WriteFile(file, []byte(peers.Policy("default")), 0o644); err != nil {
		t.Fatal(err)
	}
	name := peers.PolicyName(id)
	if _, err := cluster.Nomad("acl", "policy", "apply", "-namespace", "default", "-job", id, name, file); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cluster.Nomad("acl", "policy", "delete", name) })
}

// submitJobWith is submitJob with more secrets in the job's Variable.
func submitJobWith(t testing.TB, spec, id string, vars, secrets map[string]string) *job {
	t.Helper()
	args := []string{"job", "run", "-detach"}
	for k, v := range vars {
		args = append(args, "-var", k+"="+v)
	}
	args = append(args, "-var", "job="+id, filepath.Join(cluster.Root, "e2e", "testdata", spec))
	cookie := putSecrets(t, id, secrets)
	if vars["cluster_service"] != "" {
		attachClusterPolicy(t, id)
	}
	if _, err := cluster.Nomad(args...); err != nil {
		t.Fatal(err)
	}
	j := &job{t: t, ID: id, Cookie: cookie}
	t.Cleanup(func() { _, _ = cluster.Nomad("job", "stop", "-purge", id) })
	return j
}

// runningAllocs waits until n allocations of the job run and returns jobs
// that each point at one of them.
func (j *job) runningAllocs(n int) []*job {
	j.t.Helper()
	var out []*job
	err := waitFor(3*time.Minute, func() error {
		allocs, _, err := cluster.NomadAPI.Jobs().Allocations(j.ID, false, nil)
		if err != nil {
			return err
		}
		out = out[:0]
		for _, a := range allocs {
			if a.ClientStatus == "running" {
				out = append(out, &job{t: j.t, ID: j.ID, Alloc: a.ID, Cookie: j.Cookie})
			}
		}
		if len(out) < n {
			return fmt.Errorf("%d of %d allocations running", len(out), n)
		}
		return nil
	})
	if err != nil {
		j.t.Fatal(err)
	}
	return out
}

// taskState returns the allocation's state of a task, an empty one while
// it has none.
func taskState(a *nomadapi.Allocation, task string) *nomadapi.TaskState {
	if st := a.TaskStates[task]; st != nil {
		return st
	}
	return &nomadapi.TaskState{}
}

// allocPorts returns the allocation's ports, none before it has resources.
func allocPorts(a *nomadapi.Allocation) []nomadapi.PortMapping {
	if a.AllocatedResources == nil {
		return nil
	}
	return a.AllocatedResources.Shared.Ports
}

// waitAlloc waits until the job has an allocation in the given client
// status, and fails fast if it failed instead.
func (j *job) waitAlloc(status string, timeout time.Duration) string {
	j.t.Helper()
	var id string
	err := waitFor(timeout, func() error {
		allocs, _, err := cluster.NomadAPI.Jobs().Allocations(j.ID, false, nil)
		if err != nil {
			return err
		}
		for _, a := range allocs {
			if a.ClientStatus == status {
				id = a.ID
				return nil
			}
			if a.ClientStatus == "failed" && status != "failed" {
				return permanent{fmt.Errorf("allocation %s failed: %s", a.ID, j.describe(a.ID))}
			}
		}
		return fmt.Errorf("no %s allocation yet (%d allocations)", status, len(allocs))
	})
	if err != nil {
		j.t.Fatalf("job %s: %v", j.ID, err)
	}
	return id
}

// alloc returns the allocation's current state.
func (j *job) alloc() *nomadapi.Allocation {
	j.t.Helper()
	a, _, err := cluster.NomadAPI.Allocations().Info(j.Alloc, nil)
	if err != nil {
		j.t.Fatal(err)
	}
	return a
}

// task returns the state of one of the allocation's tasks.
func (j *job) task(name string) *nomadapi.TaskState {
	j.t.Helper()
	return taskState(j.alloc(), name)
}

// port returns the host port that Nomad assigned to a label.
func (j *job) port(label string) int {
	j.t.Helper()
	for _, p := range allocPorts(j.alloc()) {
		if p.Label == label {
			return p.Value
		}
	}
	j.t.Fatalf("allocation %s has no port %q", j.Alloc, label)
	return 0
}

// describe returns the task events of an allocation, for failure messages.
func (j *job) describe(allocID string) string {
	out, _ := cluster.Nomad("alloc", "status", allocID)
	return out
}

// events returns the display messages of the task's events.
func (j *job) events(task string) []string {
	var msgs []string
	for _, e := range j.task(task).Events {
		msgs = append(msgs, e.DisplayMessage)
	}
	return msgs
}

// get fetches a path from the app and returns the body.
func get(port int, path string) (string, error) {
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), nil
}

// waitHTTP waits until the app answers a path, and returns the body.
func waitHTTP(t testing.TB, port int, path string, timeout time.Duration) string {
	t.Helper()
	var body string
	err := waitFor(timeout, func() (err error) {
		body, err = get(port, path)
		return err
	})
	if err != nil {
		t.Fatalf("app on port %d never answered %s: %v", port, path, err)
	}
	return body
}

// waitConsulPassing waits until Consul lists the service with a passing
// check on the given port.
func waitConsulPassing(t testing.TB, service string, port int) {
	t.Helper()
	err := waitFor(60*time.Second, func() error {
		entries, _, err := cluster.ConsulAPI.Health().Service(service, "", true, nil)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Service != nil && e.Service.Port == port {
				return nil
			}
		}
		return fmt.Errorf("service %s on port %d not passing in Consul (%d passing)", service, port, len(entries))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitLogs waits until the task's stdout contains want.
func (j *job) waitLogs(task, want string) string {
	j.t.Helper()
	var out string
	err := waitFor(30*time.Second, func() (err error) {
		out, err = cluster.Nomad("alloc", "logs", j.Alloc, task)
		if err != nil {
			return err
		}
		if !strings.Contains(out, want) {
			return fmt.Errorf("stdout does not contain %q yet", want)
		}
		return nil
	})
	if err != nil {
		j.t.Fatalf("alloc logs: %v\nstdout so far:\n%s", err, out)
	}
	return out
}

// waitStats waits for a sample of the allocation's resource usage taken
// after since, with non-zero memory and CPU, and returns it.
func (j *job) waitStats(since time.Time) *nomadapi.AllocResourceUsage {
	j.t.Helper()
	var s *nomadapi.AllocResourceUsage
	err := waitFor(30*time.Second, func() (err error) {
		s, err = cluster.NomadAPI.Allocations().Stats(&nomadapi.Allocation{ID: j.Alloc}, nil)
		if err != nil {
			return err
		}
		u := s.ResourceUsage
		switch {
		case s.Timestamp <= since.UnixNano():
			return fmt.Errorf("no stats sample since %s", since.Format(time.RFC3339Nano))
		case u == nil || u.MemoryStats == nil || u.MemoryStats.RSS == 0:
			return fmt.Errorf("memory RSS is 0")
		case u.CpuStats == nil || u.CpuStats.TotalTicks == 0:
			return fmt.Errorf("CPU ticks are 0")
		}
		return nil
	})
	if err != nil {
		j.t.Fatalf("task stats: %v", err)
	}
	return s
}

// putSecrets stores a fresh random cookie, and any other items, in the
// job's Nomad Variable, nomad/jobs/ID, through the HTTP API: on a command
// line it would show in the process list that the leak tests read.
func putSecrets(t testing.TB, id string, items map[string]string) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	cookie := "C" + hex.EncodeToString(b)
	all := map[string]string{"cookie": cookie}
	for k, v := range items {
		all[k] = v
	}
	putVar(t, "nomad/jobs/"+id, all)
	return cookie
}

// putVar writes a Nomad Variable through the Nomad API, and deletes it when
// the test ends.
func putVar(t testing.TB, path string, items map[string]string) {
	t.Helper()
	putVarOn(t, cluster, path, items)
}

// putVarOn is putVar on the cluster c.
func putVarOn(t testing.TB, c *Cluster, path string, items map[string]string) {
	t.Helper()
	if _, _, err := c.NomadAPI.Variables().Create(&nomadapi.Variable{Path: path, Items: items}, nil); err != nil {
		t.Fatalf("put variable %s: %v", path, err)
	}
	t.Cleanup(func() { _, _ = c.NomadAPI.Variables().Delete(path, nil) })
}
