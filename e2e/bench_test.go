//go:build e2e

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
	cmd.Dir = dir // where a crash dump would go
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
	args := append([]string{"job", "run", "-detach", "-var", "job=" + id}, sameChecks(spec)...)
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
			allocs, _, err := cluster.NomadAPI.Jobs().Allocations(id, false, nil)
			if err != nil {
				return err
			}
			if len(allocs) == 0 {
				return fmt.Errorf("not placed yet")
			}
			a, _, err := cluster.NomadAPI.Allocations().Info(allocs[0].ID, nil)
			if err != nil {
				return err
			}
			if a.ClientStatus == "failed" {
				return fmt.Errorf("allocation failed")
			}
			for _, p := range allocPorts(a) {
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

// BenchmarkReleaseCache compares the beam driver, whose per-node cache
// fetches a release once, with raw_exec + artifact, which fetches it for
// every allocation: time to HTTP cold and warm, and five allocations of a
// 50 MB release from a store throttled to 100 Mbit/s in total, with the
// bytes the store sent. Run it with `make bench`.
func BenchmarkReleaseCache(b *testing.B) {
	var coldBeam, coldRaw, warmBeam, warmRaw, fiveBeam, fiveRaw time.Duration
	var bytesBeam, bytesRaw, size int64
	for i := 0; i < b.N; i++ {
		small := func() map[string]string {
			name, body := releases.Padded(b, "hello_erl-0.1.0.tar.gz", 0)
			return map[string]string{"task": "hello_erl", "source": releases.URL + "/" + name, "sha256": sha(body)}
		}
		vb, vr := small(), small()
		beam := func(kind string) time.Duration {
			return timeToHTTP(b, "beam.nomad.hcl", fmt.Sprintf("%s-beam-%d", kind, i), vb)
		}
		raw := func(kind string) time.Duration {
			return timeToHTTP(b, "rawexec.nomad.hcl", fmt.Sprintf("%s-raw-%d", kind, i), vr)
		}
		// Each goes first in every other iteration, so that neither
		// always runs on a machine the other has just warmed or loaded.
		if i%2 == 0 {
			coldBeam += beam("cold")
			coldRaw += raw("cold")
			warmBeam += beam("warm")
			warmRaw += raw("warm")
		} else {
			coldRaw += raw("cold")
			coldBeam += beam("cold")
			warmRaw += raw("warm")
			warmBeam += beam("warm")
		}

		name, body := releases.Padded(b, "hello_erl-0.1.0.tar.gz", 50<<20)
		size = int64(len(body))
		vars := map[string]string{"task": "hello_erl", "sha256": sha(body), "count": "5"}
		d, n := fiveFromThrottled(b, "beam.nomad.hcl", fmt.Sprintf("five-beam-%d", i), name, vars)
		fiveBeam, bytesBeam = fiveBeam+d, bytesBeam+n
		d, n = fiveFromThrottled(b, "rawexec.nomad.hcl", fmt.Sprintf("five-raw-%d", i), name, vars)
		fiveRaw, bytesRaw = fiveRaw+d, bytesRaw+n
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(coldBeam.Seconds()/coldRaw.Seconds(), "cold-beam/raw")
	b.ReportMetric(warmBeam.Seconds()/warmRaw.Seconds(), "warm-beam/raw")
	b.ReportMetric(float64(bytesBeam)/n/float64(size), "five-beam-bytes/tarball")
	b.ReportMetric(float64(bytesRaw)/n/float64(size), "five-raw-bytes/tarball")
	b.ReportMetric(fiveBeam.Seconds()/fiveRaw.Seconds(), "five-throttled-beam/raw")
	b.ReportMetric(fiveBeam.Seconds()/n, "five-beam-s")
	b.ReportMetric(fiveRaw.Seconds()/n, "five-raw-s")
}

// fiveFromThrottled runs five allocations of a release served at 100 Mbit/s
// in total and returns the time until all five answer and the bytes sent.
func fiveFromThrottled(b *testing.B, spec, id, name string, vars map[string]string) (time.Duration, int64) {
	b.Helper()
	srv, err := serveThrottled(releases.dir, 100e6)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	v := map[string]string{"source": srv.URL + "/" + name}
	for k, x := range vars {
		v[k] = x
	}
	putSecrets(b, id, nil)
	start := time.Now()
	args := append([]string{"job", "run", "-detach", "-var", "job=" + id}, sameChecks(spec)...)
	for k, x := range v {
		args = append(args, "-var", k+"="+x)
	}
	if _, err := cluster.Nomad(append(args, cluster.Root+"/e2e/testdata/"+spec)...); err != nil {
		b.Fatal(err)
	}
	defer func() { _, _ = cluster.Nomad("job", "stop", "-purge", id) }()
	err = waitEvery(50*time.Millisecond, 5*time.Minute, func() error {
		allocs, _, err := cluster.NomadAPI.Jobs().Allocations(id, false, nil)
		if err != nil {
			return err
		}
		up := 0
		for _, a := range allocs {
			full, _, err := cluster.NomadAPI.Allocations().Info(a.ID, nil)
			if err != nil {
				return err
			}
			for _, p := range allocPorts(full) {
				if p.Label == "http" {
					if _, err := get(p.Value, "/health"); err == nil {
						up++
					}
				}
			}
		}
		if up < 5 {
			return fmt.Errorf("%d of 5 allocations answer", up)
		}
		return nil
	})
	if err != nil {
		b.Fatalf("%s: %v", id, err)
	}
	return time.Since(start), srv.sent.Load()
}

// sameChecks gives the beam test job the raw_exec job's health checks
// (HTTP only): the comparison is about starting the release, and the
// beam-health script check would add the driver's calls into a booting
// node to one side only.
func sameChecks(spec string) []string {
	if spec == "beam.nomad.hcl" {
		return []string{"-var", "beam_check=false"}
	}
	return nil
}
