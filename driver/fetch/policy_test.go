package fetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func policy(t *testing.T, allow ...string) *Policy {
	t.Helper()
	p := &Policy{Where: `sources { namespace "team-a" }`}
	for _, a := range allow {
		pr, err := ParsePrefix(a)
		if err != nil {
			t.Fatal(err)
		}
		p.Allow = append(p.Allow, pr)
	}
	return p
}

func TestPolicyCheck(t *testing.T) {
	p := policy(t, "s3://team-a-releases/", "https://artifacts.example.com/team-a/", "/srv/releases/a", "gs://bkt/x/")
	for src, ok := range map[string]bool{
		"s3://team-a-releases/app/1.0.0.tar.gz":                 true,
		"s3://team-b-releases/app.tar.gz":                       false,
		"s3://team-a-releases-evil/app.tar.gz":                  false,
		"https://artifacts.example.com/team-a/app.tar.gz?sig=1": true,
		"https://ARTIFACTS.example.com:443/team-a/app.tar.gz":   true,
		"https://artifacts.example.com/team-ab/app.tar.gz":      false,
		"https://artifacts.example.com/team-a/../team-b/x":      false,
		"https://artifacts.example.com/team-a/%2e%2e/team-b/x":  false,
		"https://artifacts.example.com/team-a/..%2fteam-b/x":    false,
		"https://artifacts.example.com@evil.com/team-a/x":       false,
		"http://artifacts.example.com/team-a/app.tar.gz":        false,
		"/srv/releases/a/app.tar.gz":                            true,
		"file:///srv/releases/a/app.tar.gz":                     true,
		"/srv/releases/ab/app.tar.gz":                           false,
		"/srv/releases/a":                                       true,
		"gs://bkt/x/y.tar.gz":                                   true,
		"http://127.0.0.1:8500/v1/kv/x":                         false,
	} {
		err := p.Check(src)
		if (err == nil) != ok {
			t.Errorf("%s: %v, want allowed=%v", src, err, ok)
		}
		if err != nil && (!errors.Is(err, ErrRefused) || !IsPermanent(err) || !strings.Contains(err.Error(), `namespace "team-a"`)) {
			t.Errorf("%s: error %v does not name the policy or is not permanent", src, err)
		}
	}
	one := policy(t, "https://h/a/app.tar.gz", "s3://MyBucket/x/")
	for src, ok := range map[string]bool{"https://h/a/app.tar.gz": true, "https://h/a/app.tar.gz.sha256": true,
		"https://h/a/app.tar.gz2": false, "s3://MyBucket/x/y": true, "s3://mybucket/x/y": false} {
		if err := one.Check(src); (err == nil) != ok {
			t.Errorf("%s: %v, want allowed=%v", src, err, ok)
		}
	}
	var none *Policy
	if err := none.Check("http://127.0.0.1/x"); err != nil {
		t.Errorf("no policy: %v", err)
	}
	for _, bad := range []string{"ftp://x/", "https:///x", "s3://b/a/../c/", "https://u:p@h/x/", "https://h/x?q=1"} {
		if _, err := ParsePrefix(bad); err == nil {
			t.Errorf("prefix %q accepted", bad)
		}
	}
}

// A loopback listener that counts requests: a source the policy refuses
// must reach it with none, and so must a redirect from an allowed one.
func TestPolicyGuardsDials(t *testing.T) {
	var hits atomic.Int64
	victim := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("loopback-only answer"))
	}))
	defer victim.Close()
	allowed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, victim.URL+"/secret", http.StatusFound)
	}))
	defer allowed.Close()
	f := New(Config{}).WithPolicy(policy(t, allowed.URL+"/releases/"), nil)
	dst := filepath.Join(t.TempDir(), "out")

	for _, src := range []string{victim.URL + "/secret", allowed.URL + "/releases/app.tar.gz",
		"http://localhost:" + strings.TrimPrefix(victim.URL, "http://127.0.0.1:") + "/releases/x"} {
		_, err := f.Download(context.Background(), src, dst, nil)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want refused", src, err)
		}
		if err != nil && strings.Contains(err.Error(), "loopback-only") {
			t.Errorf("%s: the error quotes the answer: %v", src, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the loopback listener got %d requests", n)
	}
	// The sidecar goes through the same policy.
	if _, err := f.Checksum(context.Background(), victim.URL+"/secret.tar.gz"); !errors.Is(err, ErrRefused) {
		t.Errorf("sidecar: %v", err)
	}
	// Without a policy, as before: the prefix is the operator's business.
	if _, err := New(Config{}).Download(context.Background(), victim.URL+"/x", dst, nil); err != nil || hits.Load() != 1 {
		t.Errorf("no policy: %v, %d requests", err, hits.Load())
	}
}

// A sidecar that does not hold 64 hex digits is not quoted, and not taken
// as a digest that a later mismatch would quote.
func TestChecksumNeedsHex(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("Z", 64) + "  app.tar.gz\n"))
	}))
	defer srv.Close()
	_, err := New(Config{}).Checksum(context.Background(), srv.URL+"/app.tar.gz")
	if err == nil || strings.Contains(err.Error(), "ZZZZ") {
		t.Errorf("got %v, want a refusal that quotes nothing", err)
	}
}

// BenchmarkFetchPolicy: a 16 MiB download from a loopback store without a
// policy and with one (prefix check, guarded dial, redirect check): the
// policy's cost is one check per fetch and per dial, nothing per byte.
func BenchmarkFetchPolicy(b *testing.B) {
	body := make([]byte, 16<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	dst := filepath.Join(b.TempDir(), "out")
	p := &Policy{Where: "bench"}
	pr, err := ParsePrefix(srv.URL + "/releases/")
	if err != nil {
		b.Fatal(err)
	}
	p.Allow = []Prefix{pr}
	for _, bc := range []struct {
		name string
		f    *Fetcher
	}{{"no-policy", New(Config{})}, {"policy", New(Config{}).WithPolicy(p, nil)}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := bc.f.Download(context.Background(), srv.URL+"/releases/app.tar.gz", dst, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
