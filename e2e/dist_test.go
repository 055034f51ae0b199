//go:build e2e

package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

var nodePattern = regexp.MustCompile(`on (\S+@\S+)`)

// TestNodesOnDifferentPortsConnect runs two allocations of one job, each
// listening on its own Nomad-assigned distribution port, and checks that
// they reach each other by name through the driver's port mapper, with the
// cookie from the job's Nomad Variable. No epmd daemon runs.
func TestNodesOnDifferentPortsConnect(t *testing.T) {
	cases := []struct {
		kind, tarball, task string
		ping                func(peer string) []string
		pong                string
	}{
		{
			kind: "mix", tarball: "hello_ex-0.1.0.tar.gz", task: "hello_ex",
			ping: func(peer string) []string {
				return []string{"bin/hello_ex", "rpc", fmt.Sprintf(`IO.inspect(Node.ping(:"%s"))`, peer)}
			},
			pong: ":pong",
		},
		{
			kind: "relx", tarball: "hello_erl-0.1.0.tar.gz", task: "hello_erl",
			ping: func(peer string) []string {
				return []string{"bin/hello_erl", "eval", fmt.Sprintf(`net_adm:ping('%s').`, peer)}
			},
			pong: "pong",
		},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "dist-"+tc.kind), map[string]string{
				"task":   tc.task,
				"source": releases.URL + "/" + tc.tarball,
				"sha256": releases.SHA256(t, tc.tarball),
				"count":  "2",
			})
			allocs := j.runningAllocs(2)
			var nodes []string
			ports := map[int]bool{}
			for _, a := range allocs {
				body := waitHTTP(t, a.port("http"), "/", 30*time.Second)
				m := nodePattern.FindStringSubmatch(body)
				if m == nil {
					t.Fatalf("GET / = %q names no node", body)
				}
				nodes = append(nodes, m[1])
				ports[a.port("dist")] = true
			}
			if len(ports) != 2 {
				t.Fatalf("both allocations got the same distribution port: %v", ports)
			}
			for i, a := range allocs {
				peer := nodes[1-i]
				out, err := cluster.Nomad(append([]string{"alloc", "exec", "-task", "node", a.Alloc}, tc.ping(peer)...)...)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(out, tc.pong) {
					t.Fatalf("%s pinging %s printed %q, want %s", nodes[i], peer, out, tc.pong)
				}
			}
			if pids := processesNamed("epmd"); len(pids) > 0 {
				t.Errorf("an epmd daemon runs (pids %v)", pids)
			}
		})
	}
}
