// Package loadtest sends a steady, bounded load through load balancers that
// follow Consul, and counts every request that fails: what a deploy must
// keep at zero.
//
// Two kinds of balancer stand for what sits in front of a real service:
// Follow takes each change of Consul's list of passing instances at once,
// through blocking queries, like consul-template or Fabio; Poll refreshes
// the list only every few seconds, like a load balancer behind a DNS TTL or
// a periodic health check. A deploy that is safe for Poll has deregistered
// an instance from Consul long enough before it stops.
package loadtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// Balancer is a round-robin HTTP reverse proxy on 127.0.0.1 over the
// passing instances of one Consul service.
type Balancer struct {
	Name string // "follow" or "poll 3s"
	URL  string // http://127.0.0.1:PORT

	srv    *http.Server
	cancel context.CancelFunc
	done   chan struct{}
	next   atomic.Uint64

	mu       sync.Mutex
	backends []string
	updates  int
	err      error
}

// Follow starts a balancer that updates its instances as soon as Consul's
// health of service changes.
func Follow(c *consul.Client, service string) (*Balancer, error) {
	return start(c, service, "follow", 0)
}

// Poll starts a balancer that reads the passing instances of service every
// interval and keeps using the old list in between.
func Poll(c *consul.Client, service string, every time.Duration) (*Balancer, error) {
	if every <= 0 {
		return nil, fmt.Errorf("balancer for %s: the poll interval must be above 0, not %s", service, every)
	}
	return start(c, service, "poll "+every.String(), every)
}

func start(c *consul.Client, service, name string, every time.Duration) (*Balancer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("balancer %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Balancer{Name: name, URL: "http://" + l.Addr().String(), cancel: cancel, done: make(chan struct{})}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			if u, _ := r.In.Context().Value(backendKey{}).(*url.URL); u != nil {
				r.SetURL(u)
			}
		},
		// A fresh connection per request, as the apps close theirs, and no
		// retries: a request that a stopping instance refuses is a failure.
		Transport: &http.Transport{
			DisableKeepAlives:     true,
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			ResponseHeaderTimeout: 10 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "balancer: "+err.Error(), http.StatusBadGateway)
		},
	}
	b.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u := b.pick()
			if u == nil {
				http.Error(w, "balancer: no passing instance of "+service, http.StatusServiceUnavailable)
				return
			}
			proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), backendKey{}, u)))
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = b.srv.Serve(l) }()
	go func() {
		defer close(b.done)
		b.watch(ctx, c.Health(), service, every)
	}()
	return b, nil
}

type backendKey struct{}

// watch keeps b.backends current until ctx ends.
func (b *Balancer) watch(ctx context.Context, h *consul.Health, service string, every time.Duration) {
	var index uint64
	for ctx.Err() == nil {
		q := (&consul.QueryOptions{}).WithContext(ctx)
		if every == 0 {
			q.WaitIndex, q.WaitTime = index, 30*time.Second
		}
		entries, meta, err := h.Service(service, "", true, q)
		if err != nil {
			if ctx.Err() == nil {
				b.mu.Lock()
				b.err = err
				b.mu.Unlock()
				sleep(ctx, time.Second)
			}
			continue
		}
		var addrs []string
		for _, e := range entries {
			addr := e.Service.Address
			if addr == "" {
				addr = e.Node.Address
			}
			addrs = append(addrs, net.JoinHostPort(addr, fmt.Sprint(e.Service.Port)))
		}
		sort.Strings(addrs)
		b.mu.Lock()
		b.backends, b.err = addrs, nil
		b.updates++
		b.mu.Unlock()
		if every == 0 {
			// As Consul's documentation advises: start over when the index
			// goes back, and never block on 0, which returns at once.
			switch {
			case meta.LastIndex < index:
				index = 0
			case meta.LastIndex == 0:
				index = 1
			default:
				index = meta.LastIndex
			}
			continue
		}
		sleep(ctx, every)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (b *Balancer) pick() *url.URL {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.backends) == 0 {
		return nil
	}
	addr := b.backends[int(b.next.Add(1)%uint64(len(b.backends)))]
	return &url.URL{Scheme: "http", Host: addr}
}

// Backends returns the instances the balancer sends requests to now.
func (b *Balancer) Backends() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.backends...)
}

// WaitReady waits until the balancer has at least n instances.
func (b *Balancer) WaitReady(ctx context.Context, n int) error {
	for {
		b.mu.Lock()
		have, err := len(b.backends), b.err
		b.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("balancer %s: %d of %d instances: %w", b.Name, have, n, err)
			}
			return fmt.Errorf("balancer %s: %d of %d passing instances: %w", b.Name, have, n, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops the balancer.
func (b *Balancer) Close() error {
	b.cancel()
	<-b.done
	return b.srv.Close()
}
