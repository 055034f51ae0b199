//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDayTwo runs the operator's day two with the beamctl binary against
// the real agents and stores: publish to S3 (and GCS), deploy the example
// jobspec, hot-upgrade it, deploy a new base, look at it, open a shell on
// it and read its logs; and a deploy that fails.
func TestDayTwo(t *testing.T) {
	s3 := []string{"-s3-endpoint", "http://" + stores.S3Addr, "-s3-path-style"}
	dest := "s3://" + Bucket + "/dist/daytwo"
	publish := func(tarball string, extra ...string) (string, int) {
		args := append(append([]string{"publish", "-to", dest}, s3...), extra...)
		return beamctl(t, append(args, cluster.Root+"/build/releases/"+tarball)...)
	}

	// Publish: a full release, a hot-upgrade package, and a refusal to
	// overwrite.
	out, code := publish("hello_erl-0.1.0.tar.gz")
	if code != 0 || !strings.Contains(out, `source = "`+dest+`/hello_erl-0.1.0.tar.gz"`) ||
		!strings.Contains(out, "sha256 = \""+releases.SHA256(t, "hello_erl-0.1.0.tar.gz")) || !strings.Contains(out, "Not a hot-upgrade package") {
		t.Fatalf("publish 0.1.0: exit %d\n%s", code, out)
	}
	out, code = publish("hello_erl-0.2.0.tar.gz")
	if code != 0 || !strings.Contains(out, "Hot-upgrade package: its relup upgrades from 0.1.0") {
		t.Fatalf("publish 0.2.0: exit %d\n%s", code, out)
	}
	if out, code = publish("hello_erl-0.3.0.tar.gz"); code != 0 {
		t.Fatalf("publish 0.3.0: exit %d\n%s", code, out)
	}
	if out, code = publish("hello_erl-0.1.0.tar.gz"); code != 1 || !strings.Contains(out, "already published") || !strings.Contains(out, "-force") {
		t.Errorf("publishing 0.1.0 again: exit %d, want 1 and a refusal that mentions -force\n%s", code, out)
	}
	if out, code = publish("hello_erl-0.1.0.tar.gz", "-force"); code != 0 {
		t.Errorf("publish -force: exit %d\n%s", code, out)
	}
	out, _, code = beamctlSplit(t, "publish", "-json", "-to", "gs://"+Bucket+"/dist/daytwo", cluster.Root+"/build/releases/hello_ex-0.2.0.tar.gz")
	var pub struct {
		Source string
		Kind   string
		From   []string `json:"hot_upgrade_from"`
	}
	if err := json.Unmarshal([]byte(out), &pub); code != 0 || err != nil || pub.Kind != "mix" || len(pub.From) != 1 || pub.From[0] != "0.1.0" {
		t.Errorf("publish to GCS: exit %d, %v\n%s", code, err, out)
	}

	// Deploy the example jobspec from S3; the sha256 comes from the
	// published .sha256.
	const id = "hello-erl"
	spec := cluster.Root + "/jobspecs/hello_erl.nomad.hcl"
	putSecrets(t, id, nil)
	t.Cleanup(func() { _, _ = cluster.Nomad("job", "stop", "-purge", id) })
	out, code = beamctl(t, append([]string{"deploy", "-source", dest + "/hello_erl-0.1.0.tar.gz"}, append(s3, spec)...)...)
	t.Logf("deploy 0.1.0:\n%s", out)
	if code != 0 || !strings.Contains(out, "successful") {
		t.Fatalf("deploy 0.1.0: exit %d", code)
	}
	j := &job{t: t, ID: id}
	j.Alloc = j.runningAllocs(1)[0].Alloc

	// Hot upgrade to 0.2.0, then a full deploy of 0.3.0, which clears the
	// hot target set for the old base.
	if out, code = beamctl(t, "upgrade", "-job", id, "-version", "0.2.0", "-source", dest+"/hello_erl-0.2.0.tar.gz"); code != 0 {
		t.Fatalf("upgrade: exit %d\n%s", code, out)
	}
	out, code = beamctl(t, append([]string{"deploy", "-source", dest + "/hello_erl-0.3.0.tar.gz"}, append(s3, spec)...)...)
	t.Logf("deploy 0.3.0:\n%s", out)
	if code != 0 || !strings.Contains(out, "canaries 1/1 (promoted)") {
		t.Fatalf("deploy 0.3.0: exit %d", code)
	}
	if hotVar, _, err := cluster.NomadAPI.Variables().Read("nomad/jobs/"+id+"/web/hello_erl", nil); err == nil && len(hotVar.Items) > 0 {
		t.Errorf("hot targets of the old base remain after a full deploy: %v", hotVar.Items)
	}

	// Status, shell and logs.
	out, _, code = beamctlSplit(t, "status", "-job", id, "-json")
	var rows []struct{ Base, Hot, Health, Node string }
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 1 || rows[0].Base != "0.3.0" || rows[0].Hot != "" {
		t.Errorf("status after the deploy: exit %d, %v\n%s", code, err, out)
	}
	node := ""
	if len(rows) == 1 {
		node = rows[0].Node
	}
	out, code = beamctl(t, "shell", "-job", id, "-e", "node().")
	if code != 0 || node == "" || !strings.Contains(out, node) {
		t.Errorf("shell -e 'node().': exit %d, want %q in\n%s", code, node, out)
	}
	err := waitFor(30*time.Second, func() error {
		out, code = beamctl(t, "logs", "-job", id)
		if code != 0 || !regexp.MustCompile(`(?m)^\[`+regexp.QuoteMeta(node)+`\] hello_erl 0\.3\.0 booted`).MatchString(out) {
			return fmt.Errorf("logs: exit %d:\n%s", code, out)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	// Errors that say what to do.
	if out, code = beamctl(t, "status", "-job", "no-such-job"); code != 3 || !strings.Contains(out, "not found") || !strings.Contains(out, "-job") {
		t.Errorf("a missing job: exit %d\n%s", code, out)
	}
	if out, code = beamctl(t, "status", "-job", id, "-address", "http://127.0.0.1:1"); code != 3 || !strings.Contains(out, "NOMAD_ADDR") {
		t.Errorf("a wrong address: exit %d\n%s", code, out)
	}

	// A deploy that fails: the tarball does not match its sha256.
	bad := uniqueJob(t, "baddeploy")
	putSecrets(t, bad, nil)
	t.Cleanup(func() { _, _ = cluster.Nomad("job", "stop", "-purge", bad) })
	out, code = beamctl(t, "deploy", "-var", "job="+bad, "-var", "task=hello_erl",
		"-var", "source="+releases.URL+"/hello_erl-0.1.0.tar.gz", "-var", "sha256="+strings.Repeat("0", 64),
		cluster.Root+"/e2e/testdata/beam.nomad.hcl")
	if code != 1 || !strings.Contains(out, "deployment failed") || !strings.Contains(out, "sha256 mismatch") {
		t.Errorf("a failing deploy: exit %d, want 1 and the deployment's failure\n%s", code, out)
	}
}
