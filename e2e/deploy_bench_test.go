//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkRollingDeploy runs the rolling deploy of scenario 1 of
// TestDeployments (v1 to v2 of the relx release, count 2, one canary,
// auto-promoted, 100 requests/s through each balancer) three ways on one
// two-client cluster: with the beam driver and jobspecs/hello_erl.nomad.hcl,
// with raw_exec and the same update and stop settings, and with raw_exec
// and no shutdown_delay, the naive setup. It reports the failed requests
// through each balancer and the deploy's duration. Run it with `make bench`.
func BenchmarkRollingDeploy(b *testing.B) {
	dc, err := StartClients(cluster.Root, filepath.Join(cluster.Dir, "deploy-bench"), stores, 2, 30000, 32767)
	if err != nil {
		b.Fatal(err)
	}
	defer dc.Stop()
	// The balancers' blocking queries outlast dc.ConsulAPI's timeout.
	cc, err := newConsulAPI(dc.ConsulAddr, dc.ConsulToken, 0)
	if err != nil {
		b.Fatal(err)
	}
	raw := filepath.Join(dc.Root, "e2e", "testdata", "rawexec-deploy.nomad.hcl")
	cases := []struct {
		name, job, spec string
		vars            []string
	}{
		{"beam", "hello-erl", filepath.Join(dc.Root, "jobspecs", "hello_erl.nomad.hcl"), nil},
		{"raw_exec", "hello-erl-raw", raw, nil},
		{"raw_exec_no_delay", "hello-erl-raw", raw, []string{"shutdown_delay=0s"}},
	}
	type figures struct {
		follow, poll, sent int
		took               time.Duration
	}
	got := map[string]*figures{}
	for i := 0; i < b.N; i++ {
		for _, tc := range cases {
			putVarOn(b, dc, "nomad/jobs/"+tc.job, map[string]string{"cookie": "C" + uuid()})
			d := &deployer{t: b, c: dc, job: tc.job, spec: tc.spec, vars: tc.vars}
			if out, code := d.deploy("0.1.0", ""); code != 0 {
				b.Fatalf("%s: deploy 0.1.0: exit %d\n%s", tc.name, code, out)
			}
			d.balance(cc, tc.job)
			results, took := d.load(tc.name, false, func() {
				if out, code := d.deploy("0.2.0", ""); code != 0 {
					b.Fatalf("%s: deploy 0.2.0: exit %d\n%s", tc.name, code, out)
				}
			})
			f := got[tc.name]
			if f == nil {
				f = &figures{}
				got[tc.name] = f
			}
			f.follow += results[0].Failed
			f.poll += results[1].Failed
			f.sent += results[0].Sent + results[1].Sent
			f.took += took
			b.Logf("%s: deploy took %s; follow: %s; poll 3s: %s", tc.name, took.Round(100*time.Millisecond), results[0], results[1])
			for _, bal := range d.balancers {
				bal.Close()
			}
			// The next case may reuse the job and its service: its
			// balancers must not see this one's instances draining.
			if _, err := dc.Nomad("job", "stop", tc.job); err != nil {
				b.Fatal(err)
			}
			d.waitGone()
			if _, err := dc.Nomad("job", "stop", "-purge", tc.job); err != nil {
				b.Fatal(err)
			}
		}
	}
	n := float64(b.N)
	b.ReportMetric(0, "ns/op")
	for _, tc := range cases {
		f := got[tc.name]
		b.ReportMetric(float64(f.follow)/n, tc.name+"-failed-follow/op")
		b.ReportMetric(float64(f.poll)/n, tc.name+"-failed-poll3s/op")
		b.ReportMetric(f.took.Seconds()/n, tc.name+"-deploy-s/op")
	}
	b.ReportMetric(got["beam"].took.Seconds()/got["raw_exec"].took.Seconds(), "beam/raw_exec-deploy-time")
	fmt.Printf("rolling deploy, %d requests/s through each balancer:\n", loadRate)
	for _, tc := range cases {
		f := got[tc.name]
		fmt.Printf("  %-18s failed %d (follow) + %d (poll 3s) of %d, deploy %.1fs\n",
			tc.name, f.follow, f.poll, f.sent, f.took.Seconds()/n)
	}
}
