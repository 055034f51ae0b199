//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// beamctl runs the job tooling CLI against the cluster, with the tokens in
// its environment as an operator's shell would have them, and returns its
// stdout and then its stderr.
func beamctl(t testing.TB, args ...string) (string, int) {
	t.Helper()
	out, errs, code := beamctlSplit(t, args...)
	return out + errs, code
}

// beamctlSplit is beamctl with stdout and stderr apart, for -json output.
func beamctlSplit(t testing.TB, args ...string) (string, string, int) {
	t.Helper()
	return beamctlOn(t, cluster, args...)
}

// beamctlOn runs beamctl against the cluster c.
func beamctlOn(t testing.TB, c *Cluster, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.Root, "bin", "beamctl"), args...)
	cmd.Env = append(append(os.Environ(), stores.Env()...), c.Env()...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String(), errb.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("beamctl: %v\n%s%s", err, out.String(), errb.String())
	}
	return out.String(), errb.String(), 0
}

// appState is what one allocation's app answers.
type appState struct {
	alloc, name string
	port, pid   int
	body        string
}

func (j *job) appStates(n int) []appState {
	j.t.Helper()
	var out []appState
	for _, a := range j.runningAllocs(n) {
		port := a.port("http")
		body := waitHTTP(j.t, port, "/", 60*time.Second)
		pid, _ := pidCount(j.t, body)
		out = append(out, appState{alloc: a.Alloc, name: a.alloc().Name, port: port, pid: pid, body: body})
	}
	return out
}

// TestHotCanary rolls a hot upgrade across three allocations with the CLI:
// once through, and once with the second allocation's upgrade failing,
// which must take the first one back down.
func TestHotCanary(t *testing.T) {
	cases := []struct {
		name string
		env  string
		// want is the version every allocation serves afterwards.
		want string
		code int
	}{
		{"through", "", "hello_erl 0.2.0", 0},
		{"reverted", `{HELLO_FAIL_UPGRADE_INDEX = "1"}`, "hello_erl 0.1.0", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vars := map[string]string{
				"task":   "hello_erl",
				"source": releases.URL + "/hello_erl-0.1.0.tar.gz",
				"sha256": releases.SHA256(t, "hello_erl-0.1.0.tar.gz"),
				"hot":    "true",
				"count":  "3",
			}
			if tc.env != "" {
				vars["env"] = tc.env
			}
			j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "canary"), vars)
			before := j.appStates(3)
			for _, a := range before {
				waitConsulPassing(t, j.ID, a.port)
			}

			out, code := beamctl(t, "upgrade", "-job", j.ID, "-version", "0.2.0",
				"-source", releases.URL+"/hello_erl-0.2.0.tar.gz", "-sha256", releases.SHA256(t, "hello_erl-0.2.0.tar.gz"),
				"-step-timeout", "1m")
			t.Logf("beamctl upgrade (exit %d):\n%s", code, out)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d", code, tc.code)
			}
			if tc.code != 0 {
				for _, want := range []string{`\[0\]\s+reverting`, `\[0\]\s+reverted`, "code_change_failed", "reverted 1 allocation"} {
					if !regexp.MustCompile(want).MatchString(out) {
						t.Errorf("output lacks %q", want)
					}
				}
				if regexp.MustCompile(`\[2\]\s+upgrading`).MatchString(out) {
					t.Error("the rollout went on past the failed allocation")
				}
			}
			// The status command tells the same story.
			out, _, code = beamctlSplit(t, "status", "-job", j.ID, "-json")
			var rows []struct {
				Name, Base, Hot, Health string
				LastResultJSON          string `json:"last_result"`
			}
			if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 3 {
				t.Fatalf("beamctl status -json: exit %d, %v, %d rows:\n%s", code, err, len(rows), out)
			}
			for i, r := range rows {
				wantHot, wantLast := "0.2.0", "succeeded 0.2.0"
				if tc.code != 0 {
					wantHot = ""
					wantLast = map[int]string{0: "succeeded 0.1.0", 1: "failed 0.2.0", 2: "healthy"}[i] // [2] keeps its full deploy
				}
				if r.Base != "0.1.0" || r.Hot != wantHot || r.LastResultJSON != wantLast {
					t.Errorf("status of %s: base %q hot %q last %q; want 0.1.0, %q, %q", r.Name, r.Base, r.Hot, r.LastResultJSON, wantHot, wantLast)
				}
			}
			table, _ := beamctl(t, "status", "-job", j.ID)
			t.Logf("beamctl status:\n%s", table)

			for _, b := range before {
				body := waitHTTP(t, b.port, "/", 30*time.Second)
				if !strings.Contains(body, tc.want) {
					t.Errorf("%s serves %q, want %s", b.name, body, tc.want)
				}
				if pid, _ := pidCount(t, body); pid != b.pid {
					t.Errorf("%s: pid %d became %d", b.name, b.pid, pid)
				}
			}
		})
	}
}
