//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestStopCompletesRequestsInFlight stops a job while slow requests are in
// flight and checks that every one of them completes, for each kind of
// release: the driver's SIGTERM makes the node run init:stop (or, in the
// Gleam shipment, which has no application to stop, the app's own SIGTERM
// handler), and the app drains before it exits.
func TestStopCompletesRequestsInFlight(t *testing.T) {
	for _, tc := range []struct{ task, tarball, drained string }{
		{"hello_ex", "hello_ex-0.1.0.tar.gz", "hello_ex drained"},
		{"hello_erl", "hello_erl-0.1.0.tar.gz", "hello_erl stopped accepting"},
		{"hello_gleam", "hello_gleam-0.1.0.tar.gz", "hello_gleam stopped accepting"},
	} {
		t.Run(tc.task, func(t *testing.T) {
			t.Parallel()
			j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "drain"), map[string]string{
				"task":   tc.task,
				"source": releases.URL + "/" + tc.tarball,
				"sha256": releases.SHA256(t, tc.tarball),
			})
			port := j.port("http")
			waitHTTP(t, port, "/", 30*time.Second)
			stopInFlight(t, j, port)
			j.waitAlloc("complete", 60*time.Second)
			j.waitLogs("node", tc.drained)
		})
	}
}

// stopInFlight stops the job while 8 slow requests are open, and checks
// that each is answered.
func stopInFlight(t *testing.T, j *job, port int) {
	t.Helper()
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	connected := make(chan struct{}, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := slowGet(port, 2000+100*i, connected)
			if err == nil && !strings.Contains(body, "slow done") {
				err = fmt.Errorf("body %q", body)
			}
			errs <- err
		}()
	}
	for range n {
		<-connected
	}
	time.Sleep(300 * time.Millisecond) // accepted and sleeping in the app
	if _, err := cluster.Nomad("job", "stop", "-detach", j.ID); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
			t.Errorf("request in flight failed: %v", err)
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d requests in flight failed across the stop", failed, n)
	}
}

// slowGet requests /slow?ms=ms over a fresh connection and signals on
// connected once the request is sent.
func slowGet(port, ms int, connected chan<- struct{}) (string, error) {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 3*time.Second)
	if err != nil {
		connected <- struct{}{}
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	_, err = fmt.Fprintf(c, "GET /slow?ms=%d HTTP/1.1\r\nHost: x\r\n\r\n", ms)
	connected <- struct{}{}
	if err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %s", resp.Status)
	}
	return string(b), err
}
