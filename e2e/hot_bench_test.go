//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// BenchmarkHotUpgrade measures hot upgrades of the example relx release
// from 0.1.0 to 0.2.0, in one run:
//   - one allocation: from the operator's `beamctl upgrade` to the app
//     answering with the new code, and the driver's own time from the
//     Variable's change to success (its beam.hot.ms);
//   - three allocations: the whole hot canary, against a full canary
//     deploy of the same change with the update block of
//     jobspecs/hello_erl.nomad.hcl.
//
// Run it with `make bench`.
func BenchmarkHotUpgrade(b *testing.B) {
	v1, v2 := "hello_erl-0.1.0.tar.gz", "hello_erl-0.2.0.tar.gz"
	var one, driver, canary, full time.Duration
	for i := 0; i < b.N; i++ {
		o, d := hotOne(b, fmt.Sprintf("bench-hot-%d", i), v1, v2)
		one += o
		driver += d
		c, f := hotVersusFull(b, v1, v2)
		canary += c
		full += f
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(one.Seconds()/n, "command_to_live-s/op")
	b.ReportMetric(driver.Seconds()/n, "in_driver-s/op")
	b.ReportMetric(canary.Seconds()/n, "hot_canary_x3-s/op")
	b.ReportMetric(full.Seconds()/n, "full_canary_deploy_x3-s/op")
	b.ReportMetric(full.Seconds()/canary.Seconds(), "full/hot")
}

// hotOne upgrades a one-allocation job and returns the time from running
// beamctl to the new code answering, and the driver's own time.
func hotOne(b *testing.B, id, v1, v2 string) (time.Duration, time.Duration) {
	b.Helper()
	j := runJob(b, "beam.nomad.hcl", id, map[string]string{
		"task": "hello_erl", "source": releases.URL + "/" + v1, "sha256": releases.SHA256(b, v1), "hot": "true",
	})
	defer func() { _, _ = cluster.Nomad("job", "stop", "-purge", id) }()
	port := j.port("http")
	waitHTTP(b, port, "/health", time.Minute)

	live := make(chan time.Time, 1)
	go func() {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if body, err := get(port, "/"); err == nil && strings.Contains(body, "0.2.0") {
				live <- time.Now()
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		close(live)
	}()
	start := time.Now()
	out, code := beamctl(b, "upgrade", "-job", id, "-version", "0.2.0",
		"-source", releases.URL+"/"+v2, "-sha256", releases.SHA256(b, v2))
	if code != 0 {
		b.Fatalf("beamctl upgrade: exit %d\n%s", code, out)
	}
	at, ok := <-live
	if !ok {
		b.Fatal("the new code never answered")
	}
	ev := j.waitHot("node", "0.2.0", start.Add(-time.Second))
	var took time.Duration
	for _, e := range j.task("node").Events {
		if r, ok := hotspec.ReportOf(e.Details); ok && r.Outcome == hotspec.Succeeded {
			took = r.Took
		}
	}
	if ev.Outcome != string(hotspec.Succeeded) || took == 0 {
		b.Fatalf("no successful upgrade: %s", ev.Message)
	}
	return at.Sub(start), took
}

// hotVersusFull runs the example jobspec with three allocations of v1, and
// times a hot canary to v2 and then a full canary deploy of v2.
func hotVersusFull(b *testing.B, v1, v2 string) (time.Duration, time.Duration) {
	b.Helper()
	const id = "hello-erl" // the example jobspec's own job ID
	spec := filepath.Join(cluster.Root, "jobspecs", "hello_erl.nomad.hcl")
	putSecrets(b, id, nil)
	// Start from no hot targets: the last iteration's canary left one for
	// the whole job, which new allocations would take as they boot.
	putVar(b, "nomad/jobs/"+id+"/web/hello_erl", map[string]string{"none": ""})
	defer func() { _, _ = cluster.Nomad("job", "stop", "-purge", id) }()
	run := func(tarball string) {
		// Without -detach, `nomad job run` follows the deployment and
		// returns when it succeeds: what an operator waits for.
		if out, err := cluster.Nomad("job", "run", "-var", "count=3",
			"-var", "release_source="+releases.URL+"/"+tarball,
			"-var", "release_sha256="+releases.SHA256(b, tarball), spec); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
	}
	run(v1)

	start := time.Now()
	if out, code := beamctl(b, "upgrade", "-job", id, "-version", "0.2.0",
		"-source", releases.URL+"/"+v2, "-sha256", releases.SHA256(b, v2)); code != 0 {
		b.Fatalf("beamctl upgrade: exit %d\n%s", code, out)
	}
	canary := time.Since(start)

	start = time.Now()
	run(v2)
	return canary, time.Since(start)
}
