//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// beamCheck returns the status and output of an allocation's "beam" script
// check in Consul.
func beamCheck(j *job) (string, string, error) {
	checks, _, err := cluster.ConsulAPI.Health().Checks(j.ID+"-dist", nil)
	if err != nil {
		return "", "", err
	}
	for _, c := range checks {
		if c.Name == "beam" && strings.Contains(c.ServiceID, j.Alloc) {
			return c.Status, c.Output, nil
		}
	}
	return "", "", fmt.Errorf("no beam check for allocation %s (%d checks)", j.Alloc, len(checks))
}

// TestBEAMHealthCheck checks the driver's beam-health script check: it
// passes once the node has booted with all its applications, and turns
// critical when an application of the release stops while the OS process
// and the HTTP port may look fine.
func TestBEAMHealthCheck(t *testing.T) {
	const tarball = "hello_erl-0.1.0.tar.gz"
	j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "health"), map[string]string{
		"task": "hello_erl", "source": releases.URL + "/" + tarball, "sha256": releases.SHA256(t, tarball),
	})
	wait := func(status, output string) {
		t.Helper()
		err := waitFor(30*time.Second, func() error {
			s, out, err := beamCheck(j)
			if err != nil {
				return err
			}
			if s != status || !strings.Contains(out, output) {
				return fmt.Errorf("beam check is %s: %q", s, out)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("want the beam check %s with %q: %v", status, output, err)
		}
	}
	wait("passing", "runs hello_erl 0.1.0")
	// An operator sees the same through nomad alloc exec.
	if out, err := cluster.Nomad("alloc", "exec", j.Alloc, "beam-health"); err != nil || !strings.Contains(out, "runs hello_erl 0.1.0") {
		t.Errorf("nomad alloc exec beam-health: %v\n%s", err, out)
	}

	// Stop the release's own application on the node: the VM lives on.
	if out, code := beamctl(t, "shell", "-job", j.ID, "-e", "application:stop(hello_erl)."); code != 0 {
		t.Fatalf("beamctl shell: exit %d\n%s", code, out)
	}
	wait("critical", "not running: hello_erl")
}
