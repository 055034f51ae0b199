package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/unpack"
)

// BenchmarkJobRunToHTTP measures the time from `nomad job run` to the app's
// first HTTP answer, for the same relx release run by the beam driver and by
// raw_exec with an artifact block and ERL_DIST_PORT (the epmd-less baseline).
// The two alternate in each iteration, so both see the same machine state.
// Run it with `make bench`.
func BenchmarkJobRunToHTTP(b *testing.B) {
	const tarball = "hello_erl-0.1.0.tar.gz"
	vars := map[string]string{
		"task":   "hello_erl",
		"source": releases.URL + "/" + tarball,
		"sha256": releases.SHA256(b, tarball),
	}
	var beam, raw, hand time.Duration
	for i := 0; i < b.N; i++ {
		beam += timeToHTTP(b, "beam.nomad.hcl", fmt.Sprintf("bench-beam-%d", i), vars)
		raw += timeToHTTP(b, "rawexec.nomad.hcl", fmt.Sprintf("bench-raw-%d", i), vars)
		hand += byHand(b, filepath.Join(cluster.Root, "build", "releases", tarball))
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(beam.Seconds()/n, "beam-s/op")
	b.ReportMetric(raw.Seconds()/n, "raw_exec-s/op")
	b.ReportMetric(hand.Seconds()/n, "by_hand-s/op")
	b.ReportMetric(beam.Seconds()/raw.Seconds(), "beam/raw_exec")
	b.ReportMetric(beam.Seconds()/hand.Seconds(), "beam/by_hand")
}

// byHand unpacks the tarball and starts the release in the foreground as a
// person would, epmd-less with ERL_DIST_PORT, and returns the time until
// it answers HTTP.
func byHand(b *testing.B, tarball string) time.Duration {
	b.Helper()
	dir := b.TempDir()
	ports, err := freePorts(2)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := unpack.File(tarball, dir, unpack.Limits{}); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(dir, "bin", "hello_erl"), "foreground")
	cmd.Env = append(os.Environ(), "NOMAD_PORT_http="+strconv.Itoa(ports[0]), "ERL_DIST_PORT="+strconv.Itoa(ports[1]), "HOME="+dir)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	if err := waitEvery(20*time.Millisecond, time.Minute, func() error { _, err := get(ports[0], "/health"); return err }); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// timeToHTTP submits a job and returns how long it took until the app
// answered, then stops the job.
func timeToHTTP(b *testing.B, spec, id string, vars map[string]string) time.Duration {
	b.Helper()
	putSecrets(b, id, nil)
	start := time.Now()
	args := []string{"job", "run", "-detach", "-var", "job=" + id}
	for k, v := range vars {
		args = append(args, "-var", k+"="+v)
	}
	args = append(args, cluster.Root+"/e2e/testdata/"+spec)
	if _, err := cluster.Nomad(args...); err != nil {
		b.Fatal(err)
	}
	defer func() { _, _ = cluster.Nomad("job", "stop", "-purge", id) }()

	port := 0
	err := waitEvery(20*time.Millisecond, 2*time.Minute, func() error {
		if port == 0 {
			var allocs []allocation
			if err := cluster.NomadJSON("/v1/job/"+id+"/allocations", &allocs); err != nil {
				return err
			}
			if len(allocs) == 0 {
				return fmt.Errorf("not placed yet")
			}
			var a allocation
			if err := cluster.NomadJSON("/v1/allocation/"+allocs[0].ID, &a); err != nil {
				return err
			}
			if a.ClientStatus == "failed" {
				return fmt.Errorf("allocation failed")
			}
			for _, p := range a.AllocatedResources.Shared.Ports {
				if p.Label == "http" {
					port = p.Value
				}
			}
			if port == 0 {
				return fmt.Errorf("no port yet")
			}
		}
		_, err := get(port, "/health")
		return err
	})
	if err != nil {
		b.Fatalf("%s: %v", id, err)
	}
	return time.Since(start)
}
