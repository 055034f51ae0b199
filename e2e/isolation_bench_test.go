//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// BenchmarkIsolation measures what isolation costs at start: the time from
// `nomad job run` to HTTP, cold (a release the node has never seen), for
// the same relx release
//   - under the beam driver's default isolation (nobody, Landlock),
//   - under isolation = "none" (the agent restarted with it),
//   - under raw_exec + artifact, the tuned baseline of BenchmarkJobRunToHTTP,
//   - under Nomad's exec driver, whose chroot is the other candidate the
//     issue named for file-system isolation.
//
// Landlock, raw_exec and exec alternate in each iteration; "none" needs an
// agent restart, so its iterations follow, alternating with raw_exec again.
// Run it with `make bench`.
func BenchmarkIsolation(b *testing.B) {
	const tarball = "hello_erl-0.1.0.tar.gz"
	cold := func(kv ...string) map[string]string {
		name, body := releases.Padded(b, tarball, 0)
		m := map[string]string{"task": "hello_erl", "source": releases.URL + "/" + name, "sha256": sha(body)}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	// An agent that has just (re)started places its first job seconds
	// late, whatever the driver: each phase starts with one untimed job.
	warm := func(phase string) { timeToHTTP(b, "beam.nomad.hcl", "iso-warm-"+phase, cold()) }
	var landlock, none, raw, rawNone, chroot time.Duration
	warm("landlock")
	for i := 0; i < b.N; i++ {
		landlock += timeToHTTP(b, "beam.nomad.hcl", fmt.Sprintf("iso-landlock-%d", i), cold())
		raw += timeToHTTP(b, "rawexec.nomad.hcl", fmt.Sprintf("iso-raw-%d", i), cold())
		chroot += timeToHTTP(b, "rawexec.nomad.hcl", fmt.Sprintf("iso-exec-%d", i), cold("driver", "exec"))
	}
	restore := setPluginOption(b, `isolation = "none"`)
	warm("none")
	for i := 0; i < b.N; i++ {
		none += timeToHTTP(b, "beam.nomad.hcl", fmt.Sprintf("iso-none-%d", i), cold())
		rawNone += timeToHTTP(b, "rawexec.nomad.hcl", fmt.Sprintf("iso-raw2-%d", i), cold())
	}
	restore()
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(landlock.Seconds()/n, "landlock-s/op")
	b.ReportMetric(none.Seconds()/n, "none-s/op")
	b.ReportMetric(chroot.Seconds()/n, "exec_chroot-s/op")
	b.ReportMetric((raw+rawNone).Seconds()/(2*n), "raw_exec-s/op")
	b.ReportMetric(landlock.Seconds()/none.Seconds(), "landlock/none")
	b.ReportMetric(landlock.Seconds()/raw.Seconds(), "landlock/raw_exec")
	b.ReportMetric(none.Seconds()/rawNone.Seconds(), "none/raw_exec")
	b.ReportMetric(chroot.Seconds()/raw.Seconds(), "exec_chroot/raw_exec")
}

// setPluginOption adds a line to the beam plugin's config and restarts the
// agent with it; the returned function puts the config back.
func setPluginOption(b *testing.B, line string) func() {
	b.Helper()
	orig := cluster.agent
	restart := func(a agentConfig) {
		cluster.agent = a
		if err := os.WriteFile(cluster.nomadConfig, []byte(a.render()), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := cluster.RestartNomad(); err != nil {
			b.Fatal(err)
		}
		if err := cluster.waitNodes(); err != nil {
			b.Fatal(err)
		}
	}
	changed := orig
	changed.Beam.Lines = append(append([]string(nil), orig.Beam.Lines...), line)
	restart(changed)
	return func() { restart(orig) }
}
