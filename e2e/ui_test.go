//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// uiCheck is one line of e2e/ui/check.mjs's report.
type uiCheck struct {
	Check  string         `json:"check"`
	OK     bool           `json:"ok"`
	Error  string         `json:"error"`
	Detail map[string]any `json:"detail"`
}

// runUI runs the browser checks of e2e/ui/check.mjs for one phase and
// returns its report by check.
func runUI(t *testing.T, out string, env ...string) map[string]uiCheck {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(cluster.Root, "e2e", "ui", "check.mjs"))
	cmd.Env = append(os.Environ(), append([]string{
		"NOMAD_ADDR=" + cluster.NomadAddr, "NOMAD_TOKEN=" + cluster.NomadToken, "OUT=" + out,
	}, env...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	checks := map[string]uiCheck{}
	sc := bufio.NewScanner(strings.NewReader(string(stdout)))
	for sc.Scan() {
		var c uiCheck
		if json.Unmarshal(sc.Bytes(), &c) == nil && c.Check != "" {
			checks[c.Check] = c
			if c.OK {
				t.Logf("ui %s: ok %v", c.Check, c.Detail)
			} else {
				t.Errorf("ui %s: %s", c.Check, c.Error)
			}
		}
	}
	if err != nil && len(checks) == 0 {
		t.Fatalf("node e2e/ui/check.mjs: %v\n%s", err, stderr.String())
	}
	return checks
}

// TestNomadUI opens the Nomad web UI in Debian's Chromium and checks what
// an operator sees of a beam allocation: the job running and healthy, the
// task running with the driver's own events, non-zero CPU and memory, the
// node's boot line in the logs, and a command run through the UI's exec
// terminal. Then it hot-upgrades the allocation and checks that the events
// tell the upgrade. Screenshots go to the test's output directory
// (BEAM_UI_OUT, or a temporary one).
func TestNomadUI(t *testing.T) {
	out := os.Getenv("BEAM_UI_OUT")
	if out == "" {
		out = t.TempDir()
	}
	const v1, v2 = "hello_ex-0.1.0.tar.gz", "hello_ex-0.2.0.tar.gz"
	j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "ui"), map[string]string{
		"task": "hello_ex", "source": releases.URL + "/" + v1, "sha256": releases.SHA256(t, v1), "hot": "true",
	})
	waitHTTP(t, j.port("http"), "/", 60*time.Second)
	waitConsulPassing(t, j.ID, j.port("http"))
	base := []string{"JOB=" + j.ID, "GROUP=app", "TASK=node", "ALLOC=" + j.Alloc}

	// Some traffic, so that the CPU figure has something to show.
	l := startLoad(j.port("http"), 20, 3*time.Minute)
	defer l.Stop()
	checks := runUI(t, out, append(base, "PHASE=start",
		"EVENTS=Fetching release from|verified|Unpacking release|Started hello_ex 0.1.0 (mix release)",
		"LOG=hello_ex 0.1.0 booted", "EXEC_FILE=local/ui-exec")...)
	for _, name := range []string{"job", "allocation", "task", "logs", "exec"} {
		if _, ok := checks[name]; !ok {
			t.Errorf("ui check %s did not run", name)
		}
	}

	asked := time.Now()
	setHot(t, j.ID, map[string]hotTarget{j.Alloc: target(t, "0.2.0", v2)})
	if ev := j.waitHot("node", "0.2.0", asked.Add(-time.Second)); ev.Outcome != "succeeded" {
		t.Fatalf("hot upgrade: %s", ev.Message)
	}
	runUI(t, out, append(base, "PHASE=upgraded",
		"EVENTS=Hot upgrade 0.1.0 → 0.2.0 started|Hot upgrade 0.1.0 → 0.2.0 done",
		"LOG=hello_ex 0.1.0 booted")...)
	t.Logf("screenshots in %s", out)
}
