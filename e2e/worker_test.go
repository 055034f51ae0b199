//go:build e2e

package e2e

import (
	"regexp"
	"strings"
	"testing"
)

// TestHotCanaryWorker: a job that registers no service (a worker) is gated
// on the driver's BEAM-level health, not on Consul checks that do not
// exist, and its hot canary goes through.
func TestHotCanaryWorker(t *testing.T) {
	j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "worker"), map[string]string{
		"task":     "hello_ex",
		"source":   releases.URL + "/hello_ex-0.1.0.tar.gz",
		"sha256":   releases.SHA256(t, "hello_ex-0.1.0.tar.gz"),
		"hot":      "true",
		"count":    "2",
		"services": "false",
	})
	allocs := j.runningAllocs(2)
	out, code := beamctl(t, "upgrade", "-job", j.ID, "-version", "0.2.0",
		"-source", releases.URL+"/hello_ex-0.2.0.tar.gz", "-sha256", releases.SHA256(t, "hello_ex-0.2.0.tar.gz"),
		"-step-timeout", "1m")
	t.Logf("beamctl upgrade (exit %d):\n%s", code, out)
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(out, "health gate: BEAM health (the group registers no Consul checks)") {
		t.Error("the output does not say that BEAM health is the gate")
	}
	if n := len(regexp.MustCompile(`healthy\s+BEAM health: `).FindAllString(out, -1)); n != len(allocs) {
		t.Errorf("%d allocations passed BEAM health, want %d", n, len(allocs))
	}
	if strings.Contains(out, "no checks registered") || strings.Contains(out, "reverting") {
		t.Error("the rollout waited for Consul checks or went back")
	}
	// beamctl upgrade records the rollout in the job's history too.
	if h := history(t, j.ID); len(h) != 1 || h[0].Version != "0.2.0" || h[0].Path != "hot" || h[0].Result != "succeeded" {
		t.Errorf("history %+v", h)
	}
}
