//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestClusterThroughConsul runs three allocations that name their own
// distribution service as cluster_service, and checks that they form one
// cluster, drop an allocation that stops, and take in its replacement.
func TestClusterThroughConsul(t *testing.T) {
	const tarball = "hello_ex-0.1.0.tar.gz"
	id := uniqueJob(t, "cluster")
	j := runJob(t, "beam.nomad.hcl", id, map[string]string{
		"task":            "hello_ex",
		"source":          releases.URL + "/" + tarball,
		"sha256":          releases.SHA256(t, tarball),
		"count":           "3",
		"cluster_service": id + "-dist",
	})
	// The driver's control calls run all the while; none may show the
	// cookie on a command line.
	if leaks := watchCmdlines(j.Cookie, func() { waitCluster(t, j, 3, "") }); len(leaks) > 0 {
		t.Errorf("the cookie is on a command line while the driver clusters the nodes:\n%s", strings.Join(leaks, "\n"))
	}

	// beamctl status asks each node whom it sees: the two others.
	out, errs, code := beamctlSplit(t, "status", "-job", id, "-json")
	var rows []struct {
		Node       string
		Peers      []string
		PeersError string `json:"peers_error"`
	}
	if err := json.Unmarshal([]byte(out), &rows); code != 0 || err != nil || len(rows) != 3 {
		t.Fatalf("beamctl status: exit %d, %v\n%s%s", code, err, out, errs)
	}
	for _, r := range rows {
		if len(r.Peers) != 2 || slices.Contains(r.Peers, r.Node) {
			t.Errorf("status: %s sees peers %v (%s), want the two others", r.Node, r.Peers, r.PeersError)
		}
	}

	// Stop one allocation: Nomad replaces it.
	allocs := j.runningAllocs(3)
	stopped := allocs[0]
	gone := nodeName(t, stopped)
	if _, err := cluster.Nomad("alloc", "stop", "-detach", stopped.Alloc); err != nil {
		t.Fatal(err)
	}
	waitCluster(t, j, 3, gone)
}

// nodeName returns the node name that an allocation's app reports.
func nodeName(t *testing.T, a *job) string {
	t.Helper()
	body := waitHTTP(t, a.port("http"), "/", 30*time.Second)
	m := nodePattern.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("GET / = %q names no node", body)
	}
	return m[1]
}

// waitCluster waits until n allocations run and each node's nodes() lists
// exactly the other n-1, none of them the node named gone.
func waitCluster(t *testing.T, j *job, n int, gone string) {
	t.Helper()
	err := waitFor(90*time.Second, func() error {
		var allocs []*job
		all, _, err := cluster.NomadAPI.Jobs().Allocations(j.ID, false, nil)
		if err != nil {
			return err
		}
		for _, a := range all {
			if a.ClientStatus == "running" {
				allocs = append(allocs, &job{t: t, ID: j.ID, Alloc: a.ID})
			}
		}
		if len(allocs) != n {
			return fmt.Errorf("%d allocations running, want %d", len(allocs), n)
		}
		names := map[string]string{}
		for _, a := range allocs {
			body, err := get(a.port("http"), "/")
			if err != nil {
				return err
			}
			m := nodePattern.FindStringSubmatch(body)
			if m == nil {
				return fmt.Errorf("no node name in %q", body)
			}
			names[a.Alloc] = m[1]
		}
		for _, a := range allocs {
			out, err := cluster.Nomad("alloc", "exec", "-task", "node", a.Alloc,
				"bin/hello_ex", "rpc", `IO.puts(Enum.join(Enum.sort(Node.list()), " "))`)
			if err != nil {
				return err
			}
			var want []string
			for other, name := range names {
				if other != a.Alloc {
					want = append(want, name)
				}
			}
			sort.Strings(want)
			got := strings.TrimSpace(out)
			if got != strings.Join(want, " ") {
				return fmt.Errorf("%s sees [%s], want [%s]", names[a.Alloc], got, strings.Join(want, " "))
			}
			if gone != "" && strings.Contains(got, gone) {
				return fmt.Errorf("%s still sees the stopped node %s", names[a.Alloc], gone)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
