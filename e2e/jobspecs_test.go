//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestExampleJobspecs deploys the example jobspecs of jobspecs/ that no
// other test deploys, as an operator would with beamctl deploy, and checks
// that the app answers and both its checks (HTTP and beam-health) pass.
// jobspecs/hello_erl.nomad.hcl runs in TestDayTwo.
func TestExampleJobspecs(t *testing.T) {
	for _, tc := range []struct{ id, file, tarball, answer string }{
		{"hello-ex", "hello_ex.nomad.hcl", "hello_ex-0.1.0.tar.gz", "hello from hello_ex 0.1.0"},
		{"hello-gleam", "hello_gleam.nomad.hcl", "hello_gleam-0.1.0.tar.gz", "hello from hello_gleam"},
	} {
		t.Run(tc.id, func(t *testing.T) {
			t.Parallel()
			putSecrets(t, tc.id, nil)
			t.Cleanup(func() { _, _ = cluster.Nomad("job", "stop", "-purge", tc.id) })
			out, code := beamctl(t, "deploy", "-source", releases.URL+"/"+tc.tarball,
				"-sha256", releases.SHA256(t, tc.tarball), "-var", "count=2", cluster.Root+"/jobspecs/"+tc.file)
			if code != 0 {
				t.Fatalf("beamctl deploy: exit %d\n%s", code, out)
			}
			j := &job{t: t, ID: tc.id}
			for _, a := range j.runningAllocs(2) {
				if body := waitHTTP(t, a.port("http"), "/", 30*time.Second); !strings.Contains(body, tc.answer) {
					t.Errorf("%s answers %q", a.Alloc, body)
				}
				a.ID = tc.id
				if s, o, err := beamCheck(a); err != nil || s != "passing" {
					t.Errorf("beam check of %s: %s %q %v", a.Alloc, s, o, err)
				}
			}
		})
	}
}
