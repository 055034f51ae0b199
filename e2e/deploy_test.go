//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/nomad-driver-beam/nomad-driver-beam/tools/loadtest"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
)

// The load of every deployment scenario: through each balancer, at this
// rate, each request failing after loadTimeout.
const (
	loadRate    = 100
	loadTimeout = 5 * time.Second
)

// TestDeployments runs full deploys of jobspecs/hello_erl.nomad.hcl, as it
// is, on a cluster of two Nomad clients with Nomad and Consul ACLs on,
// under a constant load of 100 requests/s through each of two balancers:
// one follows Consul with blocking queries, the other refreshes every 3s.
// Every request is an operation that the app logs in batches.
func TestDeployments(t *testing.T) {
	// The app logs every operation in a host directory that the tasks,
	// confined, may write only because the plugin config says so.
	oplog := t.TempDir()
	if err := os.Chmod(filepath.Dir(oplog), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(oplog, 0o777); err != nil {
		t.Fatal(err)
	}
	dc, err := StartClients(cluster.Root, filepath.Join(cluster.Dir, "deploy"), stores, 2, 30000, 32767,
		fmt.Sprintf("read_write_paths = [%q]", oplog))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dc.Stop)
	d := &deployer{t: t, c: dc, job: "hello-erl", spec: filepath.Join(dc.Root, "jobspecs", "hello_erl.nomad.hcl"), oplog: oplog,
		vars: []string{"healthy_deadline=20s", "progress_deadline=40s"}}
	putVarOn(t, dc, "nomad/jobs/hello-erl", map[string]string{"cookie": "C" + uuid()})
	if out, code := d.deploy("0.1.0", ""); code != 0 {
		t.Fatalf("deploy 0.1.0: exit %d\n%s", code, out)
	}

	// The two allocations run on both clients. Their nodes do not form
	// one cluster here: each client's driver has a port mapper of its own
	// that answers only for its nodes, and a node registers with the one
	// on 127.0.0.1 (OTP's erl_epmd always dials it there), so two clients
	// on one host cannot look up each other's nodes. On real hosts they
	// do; TestClusterThroughConsul and TestNodesOnDifferentPortsConnect
	// cover clustering and lookups across ports.
	st := d.status(2)
	if st[0].Client == st[1].Client {
		t.Errorf("both allocations run on %s; want one on each client", st[0].Client)
	}

	// The balancers' blocking queries outlast dc.ConsulAPI's timeout.
	cc, err := newConsulAPI(dc.ConsulAddr, dc.ConsulToken, 0)
	if err != nil {
		t.Fatal(err)
	}
	d.balance(cc, "hello-erl")

	t.Run("1 rolling deploy with a canary", func(t *testing.T) {
		d.t = t
		d.underLoad("s1", true, func() {
			if out, code := d.deploy("0.2.0", ""); code != 0 {
				t.Errorf("deploy 0.2.0: exit %d\n%s", code, out)
			}
		})
		for _, s := range d.status(2) {
			if s.Base != "0.2.0" {
				t.Errorf("allocation %s runs %s after the deploy, want 0.2.0", s.Alloc, s.Base)
			}
		}
	})

	t.Run("2 bad deploy reverted", func(t *testing.T) {
		d.t = t
		d.underLoad("s2", true, func() {
			out, code := d.deploy("0.2.0", `HELLO_UNHEALTHY = "1"`)
			if code != exitFailedCode {
				t.Errorf("deploy of an unhealthy version: exit %d, want %d\n%s", code, exitFailedCode, out)
			}
			d.waitReverted()
		})
		for _, s := range d.status(2) {
			if s.Base != "0.2.0" || s.Health != "passing" {
				t.Errorf("allocation %s after the revert: %s, %s", s.Alloc, s.Base, s.Health)
			}
		}
	})

	t.Run("3 scale up and down", func(t *testing.T) {
		d.t = t
		d.underLoad("s3", true, func() {
			d.scale(4)
			d.scale(2)
		})
	})

	t.Run("4 node killed", func(t *testing.T) {
		d.t = t
		d.killNode()
	})

	// Every scenario ran with ACLs on; this checks what the tasks held.
	t.Run("6 ACLs and workload identity", func(t *testing.T) {
		d.t = t
		d.checkNoManagementToken()
	})

	t.Run("5 operation log", func(t *testing.T) {
		d.t = t
		d.checkOplog()
	})
}

// exitFailedCode is beamctl's exit code for a deploy that failed.
const exitFailedCode = 1

// deployer deploys the example Erlang app with beamctl, and runs changes
// under load.
type deployer struct {
	t         testing.TB
	c         *Cluster
	job       string   // the job's ID
	spec      string   // the jobspec's path
	vars      []string // more -var name=value for every deploy
	oplog     string   // the app's operation log directory, if any
	balancers []*loadtest.Balancer
	ok        []string // the operations answered 200, from every scenario
}

// deploy deploys hello_erl at version with beamctl, two allocations, and
// extra environment env (HCL map entries), and returns its exit code.
func (d *deployer) deploy(version, env string) (string, int) {
	d.t.Helper()
	tarball := "hello_erl-" + version + ".tar.gz"
	args := []string{"deploy", "-source", releases.URL + "/" + tarball, "-sha256", releases.SHA256(d.t, tarball), "-var", "count=2"}
	for _, v := range d.vars {
		args = append(args, "-var", v)
	}
	if d.oplog != "" || env != "" {
		args = append(args, "-var", fmt.Sprintf("env={HELLO_OPLOG = %q\n%s}", d.oplog, env))
	}
	out, errs, code := beamctlOn(d.t, d.c, append(args, d.spec)...)
	return out + errs, code
}

// balance starts the two balancers for service, and waits until each has
// two instances.
func (d *deployer) balance(cc *consul.Client, service string) {
	d.t.Helper()
	follow, err := loadtest.Follow(cc, service)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { follow.Close() })
	poll, err := loadtest.Poll(cc, service, 3*time.Second)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { poll.Close() })
	d.balancers = []*loadtest.Balancer{follow, poll}
	for _, b := range d.balancers {
		if err := b.WaitReady(d.t.Context(), 2); err != nil {
			d.t.Fatal(err)
		}
	}
}

// load runs f under the load of every scenario, which starts 2s before f
// and ends 3s after it, and returns what each balancer saw and how long f
// took. ops makes each request an operation for the log.
func (d *deployer) load(name string, ops bool, f func()) ([]loadtest.Result, time.Duration) {
	d.t.Helper()
	path := func(target, n int) string {
		if !ops {
			return "/"
		}
		return fmt.Sprintf("/op/%s-%d-%d", name, target, n)
	}
	var targets []string
	for _, b := range d.balancers {
		targets = append(targets, b.URL)
	}
	run := loadtest.Load{Targets: targets, Rate: loadRate, Timeout: loadTimeout, Path: path, Max: 10 * time.Minute}.Start()
	defer run.Stop() // when f fails the test; Stop may run twice
	time.Sleep(2 * time.Second)
	start := time.Now()
	f()
	took := time.Since(start)
	time.Sleep(3 * time.Second)
	return run.Stop(), took
}

// underLoad is load that reports what the balancers saw and fails the test
// on any failed request.
func (d *deployer) underLoad(name string, ops bool, f func()) {
	d.t.Helper()
	results, took := d.load(name, ops, f)
	for i, r := range results {
		d.t.Logf("%s, %s balancer: %s; the change took %s", name, d.balancers[i].Name, r, took.Round(100*time.Millisecond))
		if r.Failed > 0 {
			d.t.Errorf("%s balancer: %d of %d requests failed: %v", d.balancers[i].Name, r.Failed, r.Sent, r.Errors)
		}
		if r.Sent < loadRate*int(took/time.Second) {
			d.t.Errorf("%s balancer: only %d requests sent in %s", d.balancers[i].Name, r.Sent, took)
		}
		if ops {
			d.ok = append(d.ok, r.OK...)
		}
	}
}

// status is beamctl status -json, once n allocations run with a passing
// Consul health.
func (d *deployer) status(n int) []rollout.Status {
	d.t.Helper()
	var st []rollout.Status
	err := waitEvery(time.Second, 2*time.Minute, func() error {
		out, errs, code := beamctlOn(d.t, d.c, "status", "-job", d.job, "-json")
		if code != 0 {
			return fmt.Errorf("beamctl status: exit %d: %s", code, errs)
		}
		st = st[:0]
		if err := json.Unmarshal([]byte(out), &st); err != nil {
			return err
		}
		passing := 0
		for _, s := range st {
			if s.Health == "passing" {
				passing++
			}
		}
		if len(st) != n || passing != n {
			return fmt.Errorf("%d allocations, %d passing; want %d: %s", len(st), passing, n, out)
		}
		return nil
	})
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

// waitReverted waits until Nomad has reverted the job to a version without
// HELLO_UNHEALTHY and that version's deployment has succeeded.
func (d *deployer) waitReverted() {
	d.t.Helper()
	d.waitDeployed(func(env map[string]string) error {
		if _, bad := env["HELLO_UNHEALTHY"]; bad {
			return fmt.Errorf("the job is still the unhealthy version")
		}
		return nil
	})
}

// waitDeployed waits until the deployment of the job's current version has
// succeeded, and check accepts its task's environment.
func (d *deployer) waitDeployed(check func(env map[string]string) error) {
	d.t.Helper()
	err := waitEvery(time.Second, 2*time.Minute, func() error {
		j, _, err := d.c.NomadAPI.Jobs().Info(d.job, nil)
		if err != nil {
			return err
		}
		version := *j.Version
		if err := check(j.TaskGroups[0].Tasks[0].Env); err != nil {
			return fmt.Errorf("job version %d: %w", version, err)
		}
		dep, _, err := d.c.NomadAPI.Jobs().LatestDeployment(d.job, nil)
		if err != nil {
			return err
		}
		if dep == nil {
			dep = &nomadapi.Deployment{} // none yet
		}
		if dep.JobVersion != version || dep.Status != "successful" {
			return fmt.Errorf("deployment of version %d: %s (job version %d)", dep.JobVersion, dep.Status, version)
		}
		return nil
	})
	if err != nil {
		d.t.Fatal(err)
	}
}

// scale sets the group's count, waits until its deployment has succeeded
// and exactly n allocations run, all passing.
func (d *deployer) scale(n int) {
	d.t.Helper()
	if _, err := d.c.Nomad("job", "scale", "-detach", d.job, "web", strconv.Itoa(n)); err != nil {
		d.t.Fatal(err)
	}
	d.waitDeployed(func(map[string]string) error { return nil })
	d.status(n)
}

// killNode kills one node's OS process with SIGKILL under load, and
// measures how long until Nomad has restarted it in the same allocation
// and Consul passes it again. Requests may fail in that gap.
func (d *deployer) killNode() {
	d.t.Helper()
	st := d.status(2)
	victim := st[0]
	a, _, err := d.c.NomadAPI.Allocations().Info(victim.Alloc, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	port := 0
	for _, p := range allocPorts(a) {
		if p.Label == "http" {
			port = p.Value
		}
	}
	body, err := get(port, "/")
	if err != nil {
		d.t.Fatal(err)
	}
	pid := pidIn(body)
	if pid == 0 {
		d.t.Fatalf("no pid in %q", body)
	}
	restarts := taskState(a, "hello_erl").Restarts

	var recovered time.Duration
	d.underLoadAllowingFailures("s4", func() {
		start := time.Now()
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			d.t.Fatal(err)
		}
		err := waitEvery(100*time.Millisecond, 2*time.Minute, func() error {
			a, _, err := d.c.NomadAPI.Allocations().Info(victim.Alloc, nil)
			if err != nil {
				return err
			}
			if st := taskState(a, "hello_erl"); st.Restarts <= restarts || st.State != "running" {
				return fmt.Errorf("not restarted yet: %s", st.State)
			}
			checks, _, err := d.c.ConsulAPI.Health().Checks("hello-erl", nil)
			if err != nil {
				return err
			}
			passing := 0
			for _, c := range checks {
				if c.Status == "passing" {
					passing++
				}
			}
			if passing < 2 {
				return fmt.Errorf("%d of 2 instances passing", passing)
			}
			return nil
		})
		if err != nil {
			d.t.Fatal(err)
		}
		recovered = time.Since(start)
	})
	body, err = get(port, "/")
	if err != nil {
		d.t.Fatal(err)
	}
	if p := pidIn(body); p == pid || p == 0 {
		d.t.Errorf("after the kill the allocation answers %q, want a new OS process", body)
	}
	d.t.Logf("s4: killed the node of %s (pid %d); restarted in the same allocation and passing in Consul after %s",
		victim.Alloc[:8], pid, recovered.Round(100*time.Millisecond))
}

// underLoadAllowingFailures is underLoad for scenario 4: it reports the
// failed requests instead of failing on them.
func (d *deployer) underLoadAllowingFailures(name string, f func()) {
	d.t.Helper()
	results, _ := d.load(name, false, f)
	for i, r := range results {
		d.t.Logf("%s, %s balancer: %s", name, d.balancers[i].Name, r)
		if r.Sent == 0 {
			d.t.Errorf("%s balancer sent nothing", d.balancers[i].Name)
		}
	}
}

// pidIn reads "pid N" from the app's answer.
func pidIn(body string) int {
	f := strings.Fields(body)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "pid" {
			n, _ := strconv.Atoi(f[i+1])
			return n
		}
	}
	return 0
}

// checkOplog stops the job, so that every node flushes its batch, and
// checks that each operation answered 200 in scenarios 1 to 3 was logged.
func (d *deployer) checkOplog() {
	d.t.Helper()
	if _, err := d.c.Nomad("job", "stop", d.job); err != nil {
		d.t.Fatal(err)
	}
	d.waitGone()
	logged := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(d.oplog, "*.log"))
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			d.t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			logged["/op/"+sc.Text()] = true
		}
		f.Close()
	}
	missing := 0
	for _, op := range d.ok {
		if !logged[op] {
			if missing < 5 {
				d.t.Errorf("operation %s was answered but not logged", op)
			}
			missing++
		}
	}
	d.t.Logf("s5: %d operations answered in scenarios 1 to 3, %d logged by %d nodes, %d missing",
		len(d.ok), len(logged), len(files), missing)
	if len(d.ok) == 0 || len(files) < 4 {
		d.t.Errorf("%d operations answered, %d log files; want operations and a file per node", len(d.ok), len(files))
	}
}

// checkNoManagementToken checks that the tasks of the scenarios, all run
// with ACLs on, never held a management token: their secrets hold only
// workload identities, and no node's environment has a token.
func (d *deployer) checkNoManagementToken() {
	d.t.Helper()
	secrets, _ := filepath.Glob(filepath.Join(d.c.Dir, "nomad*", "alloc", "*", "hello_erl", "secrets", "*"))
	if len(secrets) == 0 {
		d.t.Fatal("no task secrets directory found")
	}
	identities := 0
	for _, name := range secrets {
		b, err := os.ReadFile(name)
		if err != nil {
			continue
		}
		if strings.Contains(string(b), d.c.NomadToken) || strings.Contains(string(b), d.c.ConsulToken) {
			d.t.Errorf("%s holds a management token", name)
		}
		if filepath.Base(name) == "nomad_token" {
			if !strings.HasPrefix(string(b), "eyJ") {
				d.t.Errorf("%s is not a workload identity JWT", name)
			}
			identities++
		}
	}
	if identities == 0 {
		d.t.Error("no task had a workload identity token")
	}
	// Nomad registered the services in Consul with tokens it got for their
	// workload identities, not with a token of its own.
	wi, _, err := d.c.ConsulAPI.ACL().TokenListFiltered(consul.ACLTokenFilterOptions{AuthMethod: "nomad-workloads"}, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	services := 0
	for _, tok := range wi {
		for _, si := range tok.ServiceIdentities {
			if si.ServiceName == "hello-erl" || si.ServiceName == "hello-erl-dist" {
				services++
			}
		}
	}
	if services == 0 {
		d.t.Error("no Consul token from the nomad-workloads auth method registered the hello-erl services")
	}

	// Nor does any running node's environment.
	envs := 0
	for _, s := range d.status(2) {
		a, _, err := d.c.NomadAPI.Allocations().Info(s.Alloc, nil)
		if err != nil {
			d.t.Fatal(err)
		}
		for _, p := range allocPorts(a) {
			if p.Label != "http" {
				continue
			}
			body, err := get(p.Value, "/")
			if err != nil {
				d.t.Fatal(err)
			}
			env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pidIn(body)))
			if err != nil {
				d.t.Fatal(err)
			}
			if strings.Contains(string(env), d.c.NomadToken) || strings.Contains(string(env), d.c.ConsulToken) {
				d.t.Errorf("the node of %s has a management token in its environment", s.Alloc)
			}
			envs++
		}
	}
	if envs != 2 {
		d.t.Errorf("checked the environment of %d nodes, want 2", envs)
	}
	d.t.Logf("s6: %d task secret files and %d node environments checked, %d Nomad workload identity tokens, "+
		"%d Consul service tokens from workload identities, no management token", len(secrets), envs, identities, services)
}

// waitGone waits until the job's allocations have all stopped.
func (d *deployer) waitGone() {
	d.t.Helper()
	err := waitEvery(time.Second, 2*time.Minute, func() error {
		allocs, _, err := d.c.NomadAPI.Jobs().Allocations(d.job, false, nil)
		if err != nil {
			if strings.Contains(err.Error(), "404") {
				return nil
			}
			return err
		}
		for _, a := range allocs {
			if a.ClientStatus == "running" || a.ClientStatus == "pending" {
				return fmt.Errorf("allocation %s is %s", a.ID, a.ClientStatus)
			}
		}
		return nil
	})
	if err != nil {
		d.t.Fatal(err)
	}
}
