//go:build e2e

package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReleaseKinds deploys each kind of release through the beam driver and
// checks what an operator relies on: the allocation runs, the app answers on
// the port Nomad gave it, Consul sees it passing, `nomad alloc logs` shows
// the boot, `nomad alloc exec` reaches the node, and a job stop shuts the
// node down gracefully.
func TestReleaseKinds(t *testing.T) {
	cases := []struct {
		kind    string
		tarball string
		task    string
		boot    string
		// exec runs in the node through the release's own tooling and
		// prints the node name.
		exec []string
		// stopped is what the app logs when it shuts down gracefully.
		stopped string
	}{
		{
			kind: "relx", tarball: "hello_erl-0.1.0.tar.gz", task: "hello_erl",
			boot:    "hello_erl 0.1.0 booted",
			exec:    []string{"bin/hello_erl", "eval", "node()."},
			stopped: "hello_erl shutting down gracefully",
		},
		{
			kind: "mix", tarball: "hello_ex-0.1.0.tar.gz", task: "hello_ex",
			boot:    "hello_ex 0.1.0 booted",
			exec:    []string{"bin/hello_ex", "rpc", "IO.puts(node())"},
			stopped: "hello_ex shutting down gracefully",
		},
		{
			kind: "shipment", tarball: "hello_gleam-0.1.0.tar.gz", task: "hello_gleam",
			boot: "hello_gleam booted",
		},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "kind-"+tc.kind), map[string]string{
				"task":   tc.task,
				"source": releases.URL + "/" + tc.tarball,
				"sha256": releases.SHA256(t, tc.tarball),
			})

			// 2. It answers on the port Nomad assigned.
			port := j.port("http")
			body := waitHTTP(t, port, "/", 30*time.Second)
			if !strings.Contains(body, "hello from "+tc.task) {
				t.Fatalf("GET / = %q, want a greeting from %s", body, tc.task)
			}

			// 3. Consul lists it as passing.
			waitConsulPassing(t, j.ID, port)

			// 4. Its boot output is in nomad alloc logs.
			j.waitLogs("node", tc.boot)

			// No epmd daemon was started: it would escape the task.
			if pids := processesNamed("epmd"); len(pids) > 0 {
				t.Errorf("epmd is running (pids %v); the driver must not start one", pids)
			}

			// The cookie shows nowhere.
			j.checkCookieHidden(t)

			// CPU and memory stats arrive.
			j.waitStats(time.Time{})

			// The driver's own events tell the story of the start.
			events := strings.Join(j.events("node"), "\n")
			for _, want := range []string{"Fetching release from " + releases.URL, "Unpacking release", "sha256", "verified", "Started " + tc.task + " "} {
				if !strings.Contains(events, want) {
					t.Errorf("task events lack %q:\n%s", want, events)
				}
			}

			if tc.exec != nil {
				// 5. nomad alloc exec runs a command in the node.
				node := regexp.MustCompile(`on (\S+@\S+)`).FindStringSubmatch(body)
				if node == nil {
					t.Fatalf("GET / = %q names no node", body)
				}
				args := append([]string{"alloc", "exec", "-task", "node", j.Alloc}, tc.exec...)
				var out string
				var err error
				// The client tools read the cookie from the private HOME,
				// never from their command line.
				leaks := watchCmdlines(j.Cookie, func() { out, err = cluster.Nomad(args...) })
				if err != nil {
					t.Fatal(err)
				}
				if len(leaks) > 0 {
					t.Errorf("the cookie is on a command line during exec:\n%s", strings.Join(leaks, "\n"))
				}
				if !strings.Contains(out, node[1]) {
					t.Fatalf("exec %v printed %q, want the node name %s", tc.exec, out, node[1])
				}

				// 6. Stopping the job stops the node gracefully.
				if _, err := cluster.Nomad("job", "stop", "-detach", j.ID); err != nil {
					t.Fatal(err)
				}
				j.waitAlloc("complete", 60*time.Second)
				st := j.task("node")
				var exit *int
				for _, e := range st.Events {
					if e.Type == "Terminated" {
						exit = &e.ExitCode
					}
				}
				if exit == nil || *exit != 0 {
					t.Fatalf("node did not exit with 0 on stop; events:\n%s", j.describe(j.Alloc))
				}
				j.waitLogs("node", tc.stopped)
			}
		})
	}
}
