package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// Load is a constant rate of GET requests to each of Targets, bounded in
// time and in requests.
type Load struct {
	Targets []string                   // base URLs, usually Balancer.URL
	Rate    int                        // requests per second to each target
	Path    func(target, n int) string // the path of request n to Targets[target]; "/" if nil
	Timeout time.Duration              // per request; a slower answer is a failure
	Max     time.Duration              // the load stops by itself after this long
}

// Result is what one target answered.
type Result struct {
	Target  string
	Sent    int
	Failed  int
	Latency []time.Duration // of every successful request, sorted
	Errors  map[string]int  // failures by kind: "502", "connection refused", ...
	OK      []string        // the paths answered 200
}

// Run is a load in progress.
type Run struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	results []*Result
	mu      sync.Mutex
	client  *http.Client
}

// Start starts the load. Stop ends it.
func (l Load) Start() *Run {
	if l.Rate <= 0 {
		l.Rate = 100
	}
	if l.Timeout <= 0 {
		l.Timeout = 5 * time.Second
	}
	if l.Max <= 0 {
		l.Max = 10 * time.Minute
	}
	if l.Path == nil {
		l.Path = func(int, int) string { return "/" }
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.Max)
	client := &http.Client{Timeout: l.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	r := &Run{cancel: cancel, client: client}
	for i, target := range l.Targets {
		res := &Result{Target: target, Errors: map[string]int{}}
		r.results = append(r.results, res)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			var inflight sync.WaitGroup
			defer inflight.Wait()
			tick := time.NewTicker(time.Second / time.Duration(l.Rate))
			defer tick.Stop()
			// At most Rate×(Timeout+1s) requests can be open at once, so
			// the load stays bounded even when the target stalls; a request
			// over that bound is counted as sent and failed.
			slots := make(chan struct{}, l.Rate*int(l.Timeout/time.Second+1))
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				path := l.Path(i, n)
				select {
				case slots <- struct{}{}:
				default:
					r.record(res, path, 0, errors.New("too many requests open"))
					continue
				}
				inflight.Add(1)
				go func() {
					defer func() { <-slots; inflight.Done() }()
					start := time.Now()
					err := get(client, target+path)
					r.record(res, path, time.Since(start), err)
				}()
			}
		}()
	}
	return r
}

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return statusError(resp.StatusCode)
	}
	return nil
}

type statusError int

func (s statusError) Error() string { return fmt.Sprintf("%d %s", int(s), http.StatusText(int(s))) }

func (r *Run) record(res *Result, path string, took time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res.Sent++
	if took > 0 && err == nil {
		res.Latency = append(res.Latency, took)
	}
	if err == nil {
		res.OK = append(res.OK, path)
		return
	}
	res.Failed++
	res.Errors[kind(err)]++
}

// kind names an error for counting: the HTTP status, or the last part of a
// network error ("connection refused", "EOF", ...).
func kind(err error) string {
	var s statusError
	if errors.As(err, &s) {
		return s.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err) {
		return "timeout"
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// Stop ends the load, waits for the requests still open, and returns what
// each target answered.
func (r *Run) Stop() []Result {
	r.cancel()
	r.wg.Wait()
	r.client.CloseIdleConnections()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Result, len(r.results))
	for i, res := range r.results {
		out[i] = *res
		out[i].Latency = append([]time.Duration(nil), res.Latency...)
		sort.Slice(out[i].Latency, func(a, b int) bool { return out[i].Latency[a] < out[i].Latency[b] })
	}
	return out
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of the answered
// requests' latency, or 0 if none was answered.
func (r Result) Percentile(p float64) time.Duration {
	if len(r.Latency) == 0 {
		return 0
	}
	i := int(float64(len(r.Latency))*p/100+0.5) - 1
	i = max(0, min(i, len(r.Latency)-1))
	return r.Latency[i]
}

// String is one line: sent, failed, p50 and p99, and the failures by kind.
func (r Result) String() string {
	s := fmt.Sprintf("sent %d, failed %d, p50 %s, p99 %s", r.Sent, r.Failed,
		r.Percentile(50).Round(100*time.Microsecond), r.Percentile(99).Round(100*time.Microsecond))
	if len(r.Errors) > 0 {
		var kinds []string
		for k, n := range r.Errors {
			kinds = append(kinds, fmt.Sprintf("%s ×%d", k, n))
		}
		sort.Strings(kinds)
		s += " (" + strings.Join(kinds, ", ") + ")"
	}
	return s
}
