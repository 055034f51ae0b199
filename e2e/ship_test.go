//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// history reads a job's rollouts with beamctl history -json.
func history(t *testing.T, jobID string) []struct {
	Version, Path, Result, By, Message string
	Exhausted                          bool
} {
	t.Helper()
	out, errs, code := beamctlSplit(t, "history", "-job", jobID, "-json")
	var entries []struct {
		Version, Path, Result, By, Message string
		Exhausted                          bool
	}
	if err := json.Unmarshal([]byte(out), &entries); code != 0 || err != nil {
		t.Fatalf("beamctl history: exit %d, %v\n%s%s", code, err, out, errs)
	}
	return entries
}

// TestShip ships releases with beamctl ship, which picks the path from the
// package and what the allocations run.
func TestShip(t *testing.T) {
	t.Run("hot with a pre-command", func(t *testing.T) {
		t.Parallel()
		j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "ship-hot"), map[string]string{
			"task": "hello_ex", "source": releases.URL + "/hello_ex-0.1.0.tar.gz",
			"sha256": releases.SHA256(t, "hello_ex-0.1.0.tar.gz"), "hot": "true", "count": "2",
		})
		before := j.appStates(2)
		for _, a := range before {
			waitConsulPassing(t, j.ID, a.port)
		}
		// The pre-command proves whose code it ran with: HelloEx.Shape is
		// new in 0.2.0.
		out, code := beamctl(t, "ship", "-job", j.ID, "-source", releases.URL+"/hello_ex-0.2.0.tar.gz",
			"-sha256", releases.SHA256(t, "hello_ex-0.2.0.tar.gz"), "-pre-command", `eval File.write!("migrated", inspect(HelloEx.Shape.new(1, true)))`, "-step-timeout", "1m")
		t.Logf("beamctl ship (exit %d):\n%s", code, out)
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		for _, want := range []string{"hot: relup 0.1.0→0.2.0 for all 2 allocations", "health gate: its Consul checks",
			"the canary runs the 1 pre-command(s) first", "hello_ex 0.2.0: succeeded (hot)"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		// Once per rollout: only the canary ran it, with 0.2.0's code.
		ran := 0
		for _, a := range before {
			got, err := cluster.Nomad("alloc", "fs", a.alloc, "node/local/release/migrated")
			if err == nil {
				ran++
				if strings.TrimSpace(got) != "%{count: 1, upgraded: true}" {
					t.Errorf("the pre-command wrote %q; want 0.2.0's HelloEx.Shape", got)
				}
			}
			body := waitHTTP(t, a.port, "/", 10*time.Second)
			if pid, _ := pidCount(t, body); !strings.Contains(body, "hello_ex 0.2.0") || pid != a.pid {
				t.Errorf("%s serves %q; want 0.2.0 from pid %d", a.name, body, a.pid)
			}
		}
		if ran != 1 {
			t.Errorf("the pre-command ran in %d allocations, want 1", ran)
		}
		if h := history(t, j.ID); len(h) != 1 || h[0].Version != "0.2.0" || h[0].Path != "hot" || h[0].Result != "succeeded" || h[0].By == "" {
			t.Errorf("history %+v", h)
		}
	})

	t.Run("hot pre-command fails", func(t *testing.T) {
		t.Parallel()
		j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "ship-pre"), map[string]string{
			"task": "hello_ex", "source": releases.URL + "/hello_ex-0.1.0.tar.gz",
			"sha256": releases.SHA256(t, "hello_ex-0.1.0.tar.gz"), "hot": "true",
		})
		a := j.appStates(1)[0]
		waitConsulPassing(t, j.ID, a.port)
		out, code := beamctl(t, "ship", "-job", j.ID, "-no-fallback", "-source", releases.URL+"/hello_ex-0.2.0.tar.gz",
			"-sha256", releases.SHA256(t, "hello_ex-0.2.0.tar.gz"), "-pre-command", `eval raise "migration 42 broke"`)
		t.Logf("beamctl ship (exit %d):\n%s", code, out)
		for _, want := range []string{"pre-command 1/1 (eval raise \"migration 42 broke\") failed with exit code 1",
			"migration 42 broke", "nothing was installed"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		body := waitHTTP(t, a.port, "/", 10*time.Second)
		if pid, _ := pidCount(t, body); !strings.Contains(body, "hello_ex 0.1.0") || pid != a.pid {
			t.Errorf("after the failed pre-command: %q; want 0.1.0 from pid %d", body, a.pid)
		}
		if h := history(t, j.ID); len(h) != 1 || h[0].Result != "failed" || h[0].Exhausted {
			t.Errorf("history %+v: want one failure that is not exhausted (no full path was tried)", h)
		}
	})

	t.Run("full when there is no path", func(t *testing.T) {
		t.Parallel()
		j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "ship-full"), map[string]string{
			"task": "hello_erl", "source": releases.URL + "/hello_erl-0.1.0.tar.gz",
			"sha256": releases.SHA256(t, "hello_erl-0.1.0.tar.gz"), "hot": "true",
		})
		j.appStates(1)
		// 0.3.0's relup goes up from 0.2.0 only.
		out, code := beamctl(t, "ship", "-job", j.ID, "-source", releases.URL+"/hello_erl-0.3.0.tar.gz",
			"-sha256", releases.SHA256(t, "hello_erl-0.3.0.tar.gz"))
		t.Logf("beamctl ship (exit %d):\n%s", code, out)
		if code != 0 || !strings.Contains(out, "runs 0.1.0: release 0.3.0 has no upgrade path from 0.1.0") ||
			!strings.Contains(out, "hello_erl 0.3.0: succeeded (full)") {
			t.Fatalf("exit %d", code)
		}
		a := j.appStates(1)[0]
		if !strings.Contains(a.body, "hello_erl 0.3.0") {
			t.Errorf("after the full deployment: %q", a.body)
		}
		// -hot is refused with the reason.
		out, code = beamctl(t, "ship", "-job", j.ID, "-hot", "-source", releases.URL+"/hello_erl-0.2.0.tar.gz",
			"-sha256", releases.SHA256(t, "hello_erl-0.2.0.tar.gz"))
		if code != 1 || !strings.Contains(out, "-hot: allocation") {
			t.Errorf("-hot without a path: exit %d\n%s", code, out)
		}
	})

	t.Run("fallback", func(t *testing.T) {
		t.Parallel()
		// The second allocation's code_change fails: the first goes back,
		// then both get 0.2.0 from a full deployment.
		j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "ship-back"), map[string]string{
			"task": "hello_erl", "source": releases.URL + "/hello_erl-0.1.0.tar.gz",
			"sha256": releases.SHA256(t, "hello_erl-0.1.0.tar.gz"), "hot": "true", "count": "2",
			"env": `{HELLO_FAIL_UPGRADE_INDEX = "1"}`,
		})
		for _, a := range j.appStates(2) {
			waitConsulPassing(t, j.ID, a.port)
		}
		out, code := beamctl(t, "ship", "-job", j.ID, "-source", releases.URL+"/hello_erl-0.2.0.tar.gz",
			"-sha256", releases.SHA256(t, "hello_erl-0.2.0.tar.gz"), "-step-timeout", "1m")
		t.Logf("beamctl ship (exit %d):\n%s", code, out)
		for _, want := range []string{"hot: relup 0.1.0→0.2.0", "reverted", "falling back", "hello_erl 0.2.0: fell back (hot, then full)"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		for _, a := range j.appStates(2) {
			if !strings.Contains(a.body, "hello_erl 0.2.0") {
				t.Errorf("after the fallback %s serves %q", a.name, a.body)
			}
		}
		if h := history(t, j.ID); len(h) != 1 || h[0].Result != "fell back" || !strings.Contains(h[0].Message, "code_change_failed") {
			t.Errorf("history %+v", h)
		}
	})

	t.Run("a version that failed everywhere is refused", func(t *testing.T) {
		t.Parallel()
		j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "ship-bad"), map[string]string{
			"task": "hello_erl", "source": releases.URL + "/hello_erl-0.1.0.tar.gz",
			"sha256": releases.SHA256(t, "hello_erl-0.1.0.tar.gz"), "hot": "true",
		})
		j.appStates(1)
		// No hot path from 0.1.0, and a migration that fails: the full
		// deployment fails.
		args := []string{"ship", "-job", j.ID, "-source", releases.URL + "/hello_erl-0.3.0.tar.gz",
			"-sha256", releases.SHA256(t, "hello_erl-0.3.0.tar.gz"), "-pre-command", `eval erlang:error(migration_broken)`}
		out, code := beamctl(t, args...)
		t.Logf("beamctl ship (exit %d):\n%s", code, out)
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		h := history(t, j.ID)
		if len(h) != 1 || h[0].Result != "failed" || !h[0].Exhausted || h[0].Path != "full" {
			t.Fatalf("history %+v", h)
		}
		out, code = beamctl(t, args...)
		if code != 1 || !strings.Contains(out, "failed on every path") || !strings.Contains(out, "-force") {
			t.Errorf("shipping it again: exit %d\n%s", code, out)
		}
		if len(history(t, j.ID)) != 1 {
			t.Error("the refused ship was recorded as a rollout")
		}
	})
}

// TestFollow points beamctl follow at a DeployEx bucket in S3: the pointer
// versions/APP/ENV/current.json and the release at dist/APP/, published as
// DeployEx does (the tarball and its .sha256).
func TestFollow(t *testing.T) {
	j := submitJob(t, "beam.nomad.hcl", uniqueJob(t, "follow"), map[string]string{
		"task": "hello_ex", "source": releases.URL + "/hello_ex-0.1.0.tar.gz",
		"sha256": releases.SHA256(t, "hello_ex-0.1.0.tar.gz"), "hot": "true",
	})
	a := j.appStates(1)[0]
	base := "deployex-" + j.ID
	body, err := os.ReadFile(filepath.Join(releases.dir, "hello_ex-0.2.0.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	sum := releases.SHA256(t, "hello_ex-0.2.0.tar.gz")
	for key, data := range map[string][]byte{
		base + "/dist/hello_ex/hello_ex-0.2.0.tar.gz":        body,
		base + "/dist/hello_ex/hello_ex-0.2.0.tar.gz.sha256": []byte(sum + "  hello_ex-0.2.0.tar.gz\n"),
		base + "/versions/hello_ex/prod/current.json":        []byte(`{"version":"0.2.0","hash":"4f2c1e9","pre_commands":[]}`),
	} {
		if err := stores.PutS3(key, data); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"follow", "-once", "-job", j.ID, "-pointer", "s3://" + Bucket + "/" + base + "/versions/hello_ex/prod/current.json",
		"-s3-endpoint", "http://" + stores.S3Addr, "-s3-path-style", "-step-timeout", "1m"}
	out, code := beamctl(t, args...)
	t.Logf("beamctl follow -once (exit %d):\n%s", code, out)
	if code != 0 || !strings.Contains(out, "names 0.2.0 (commit 4f2c1e9)") || !strings.Contains(out, "hello_ex 0.2.0: succeeded (hot)") {
		t.Fatalf("exit %d", code)
	}
	got := waitHTTP(t, a.port, "/", 10*time.Second)
	if pid, _ := pidCount(t, got); !strings.Contains(got, "hello_ex 0.2.0") || pid != a.pid {
		t.Errorf("after follow: %q; want 0.2.0 from pid %d", got, a.pid)
	}
	// The pointer has not moved: nothing to do.
	if out, code = beamctl(t, args...); code != 0 || !strings.Contains(out, "nothing to do: every allocation runs 0.2.0") {
		t.Errorf("second follow: exit %d\n%s", code, out)
	}
}
