package loadtest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// fakeConsul answers /v1/health/service/NAME with the instances in addrs,
// and blocking queries as soon as they change.
type fakeConsul struct {
	mu      sync.Mutex
	addrs   []string
	index   uint64
	changed chan struct{}
}

func (f *fakeConsul) set(addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs, f.index = addrs, f.index+1
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeConsul) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/health/service/web") || r.URL.Query().Get("passing") == "" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	wait, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	if wait != 0 && wait == f.index {
		ch := f.changed
		f.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
			return
		}
		f.mu.Lock()
	}
	var out []map[string]any
	for _, a := range f.addrs {
		host, port, _ := net.SplitHostPort(a)
		p, _ := strconv.Atoi(port)
		out = append(out, map[string]any{"Node": map[string]any{"Address": host}, "Service": map[string]any{"Port": p}})
	}
	w.Header().Set("X-Consul-Index", fmt.Sprint(f.index))
	f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(out)
}

func backend(t *testing.T, name string, hits *atomic.Int64) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprintln(w, name)
	}))
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func TestBalancers(t *testing.T) {
	var hitsA, hitsB atomic.Int64
	a, b := backend(t, "a", &hitsA), backend(t, "b", &hitsB)
	fake := &fakeConsul{changed: make(chan struct{})}
	fake.set(a, b)
	srv := httptest.NewServer(fake)
	defer srv.Close()
	c, err := consul.NewClient(&consul.Config{Address: strings.TrimPrefix(srv.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}

	follow, err := Follow(c, "web")
	if err != nil {
		t.Fatal(err)
	}
	defer follow.Close()
	poll, err := Poll(c, "web", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer poll.Close()
	for _, bal := range []*Balancer{follow, poll} {
		if err := bal.WaitReady(t.Context(), 2); err != nil {
			t.Fatal(err)
		}
	}

	// Round robin over both instances.
	for range 4 {
		if err := get(http.DefaultClient, follow.URL+"/"); err != nil {
			t.Fatal(err)
		}
	}
	if hitsA.Load() != 2 || hitsB.Load() != 2 {
		t.Errorf("hits a=%d b=%d, want 2 and 2", hitsA.Load(), hitsB.Load())
	}

	// Follow drops an instance at once; Poll keeps its old list.
	fake.set(a)
	deadline := time.Now().Add(5 * time.Second)
	for len(follow.Backends()) != 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := follow.Backends(); len(got) != 1 || got[0] != a {
		t.Errorf("follow has %v, want [%s]", got, a)
	}
	if got := poll.Backends(); len(got) != 2 {
		t.Errorf("poll has %v, want both until its next refresh", got)
	}

	fake.set()
	for len(follow.Backends()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := get(http.DefaultClient, follow.URL+"/"); err == nil || kind(err) != "503 Service Unavailable" {
		t.Errorf("no instance: err %v, want 503", err)
	}
}

func TestLoad(t *testing.T) {
	var n atomic.Int64
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/op/3" {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		n.Add(1)
	}))
	defer s.Close()
	l := Load{Targets: []string{s.URL}, Rate: 200, Path: func(_, i int) string { return fmt.Sprintf("/op/%d", i) }, Max: 100 * time.Millisecond}
	run := l.Start()
	time.Sleep(300 * time.Millisecond) // past Max: the load has stopped itself
	res := run.Stop()
	if len(res) != 1 {
		t.Fatalf("%d results", len(res))
	}
	r := res[0]
	if r.Sent < 5 || r.Sent > 25 {
		t.Errorf("sent %d in 100ms at 200/s", r.Sent)
	}
	if r.Failed != 1 || r.Errors["502 Bad Gateway"] != 1 {
		t.Errorf("failed %d %v, want the one 502", r.Failed, r.Errors)
	}
	if len(r.OK) != r.Sent-1 || int64(len(r.OK)) != n.Load() {
		t.Errorf("%d OK of %d sent, server saw %d", len(r.OK), r.Sent, n.Load())
	}
	if r.Percentile(50) <= 0 || r.Percentile(99) < r.Percentile(50) {
		t.Errorf("p50 %s p99 %s", r.Percentile(50), r.Percentile(99))
	}
	if !strings.Contains(r.String(), "failed 1") {
		t.Errorf("summary %q", r.String())
	}
}

func TestKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{statusError(503), "503 Service Unavailable"},
		{fmt.Errorf("Get \"http://x\": dial tcp 127.0.0.1:1: connect: connection refused"), "connection refused"},
	} {
		if got := kind(tc.err); got != tc.want {
			t.Errorf("kind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
