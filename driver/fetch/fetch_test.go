package fetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDownloadRetriesTransientFailures(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("tarball"))
	}))
	defer srv.Close()
	f := New(Config{RetryWindow: 10 * time.Second, Backoff: 10 * time.Millisecond})
	var retries int
	f.OnRetry = func(int, error, time.Duration) { retries++ }
	dst := filepath.Join(t.TempDir(), "out")
	n, err := f.Download(context.Background(), srv.URL+"/app.tar.gz", dst, nil)
	if err != nil || n != 7 || retries != 2 {
		t.Fatalf("n=%d err=%v retries=%d; want 7 bytes after 2 retries", n, err, retries)
	}
}

func TestDownloadFailsAtOnceWhenPermanent(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	f := New(Config{RetryWindow: 10 * time.Second, Backoff: 10 * time.Millisecond})
	f.OnRetry = func(int, error, time.Duration) { t.Error("a 404 was retried") }
	_, err := f.Download(context.Background(), srv.URL+"/missing.tar.gz", filepath.Join(t.TempDir(), "out"), nil)
	var nf *NotFound
	if !errors.As(err, &nf) || !IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent NotFound", err)
	}
}

func TestDownloadEndsAStall(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-release
	}))
	defer srv.Close()
	defer close(release)
	f := New(Config{StallWindow: 300 * time.Millisecond})
	start := time.Now()
	_, err := f.Download(context.Background(), srv.URL+"/slow.tar.gz", filepath.Join(t.TempDir(), "out"), nil)
	if err == nil || !strings.Contains(err.Error(), "slower than 10 KiB/s for 300ms") || IsPermanent(err) {
		t.Fatalf("err = %v, want a transient stall error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stall detected after %s", d)
	}
}

func TestChecksumSidecar(t *testing.T) {
	dir := t.TempDir()
	sum := strings.Repeat("ab", 32)
	if err := os.WriteFile(filepath.Join(dir, "app.tar.gz.sha256"), []byte(sum+"  app.tar.gz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := New(Config{FileRoots: []string{dir}}).Checksum(context.Background(), "file://"+filepath.Join(dir, "app.tar.gz"))
	if err != nil || got != sum {
		t.Fatalf("Checksum = %q, %v", got, err)
	}
}

func TestRedact(t *testing.T) {
	cases := map[string]string{
		"https://user:hunter2@example.com/app.tar.gz":  "https://REDACTED@example.com/app.tar.gz",
		"https://example.com/app.tar.gz?X-Sig=hunter2": "https://example.com/app.tar.gz?REDACTED",
		"s3://bucket/dist/app.tar.gz":                  "s3://bucket/dist/app.tar.gz",
		"https://u:hun%zzter2@example.com/x":           "https://<unparseable>",
		"user:hunter2@example.com/app.tar.gz":          "<source with credentials>",
	}
	for in, want := range cases {
		if got := Redact(in); got != want || strings.Contains(got, "hunter2") {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeniedIsPermanentAndMarked(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer srv.Close()
	_, err := New(Config{RetryWindow: 5 * time.Second}).Download(context.Background(), srv.URL+"/x.tar.gz?sig=hunter2", filepath.Join(t.TempDir(), "out"), nil)
	if !errors.Is(err, ErrDenied) || !IsPermanent(err) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v, want a permanent, redacted ErrDenied", err)
	}
}
