package fetch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A server that drips a byte every 50 ms never goes silent, so only a
// throughput rule ends it; a fast start does not buy it time.
func TestDownloadCutsADrip(t *testing.T) {
	gone := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(gone)
		w.Header().Set("Content-Length", "1000000")
		_, _ = w.Write(make([]byte, 64<<10))
		for range 200 { // 10 s at most
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	f := New(Config{StallWindow: 300 * time.Millisecond, MinRate: 10 << 10})
	start := time.Now()
	_, err := f.Download(context.Background(), srv.URL+"/drip.tar.gz", filepath.Join(t.TempDir(), "out"), nil)
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "slower than 10 KiB/s for 300ms") || IsPermanent(err) {
		t.Fatalf("err = %v, want a transient error saying the download was slower than 10 KiB/s for 300ms", err)
	}
	// The server drips for 10 s: a cut well before that is the rule's,
	// not the server giving up (the bound is generous, for a busy machine).
	if took > 5*time.Second {
		t.Errorf("the drip was cut after %s, want within a few 300ms windows", took)
	}
	select {
	case <-gone: // the connection was closed, not left dripping
	case <-time.After(2 * time.Second):
		t.Error("the server still drips: the connection was not closed")
	}
}

// A download slow in bursts but above MinRate over every window is not cut.
func TestDownloadKeepsASteadyDownload(t *testing.T) {
	chunk := strings.Repeat("y", 4<<10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 40 { // 160 KiB over 800 ms: 200 KiB/s
			_, _ = w.Write([]byte(chunk))
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond)
		}
	}))
	defer srv.Close()
	f := New(Config{StallWindow: 300 * time.Millisecond, MinRate: 10 << 10})
	n, err := f.Download(context.Background(), srv.URL+"/steady.tar.gz", filepath.Join(t.TempDir(), "out"), nil)
	if err != nil || n != 40*4<<10 {
		t.Fatalf("n=%d err=%v; want all %d bytes", n, err, 40*4<<10)
	}
}

func TestDownloadRefusesContentLengthOverMax(t *testing.T) {
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "2000")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		// The body never comes: reading it would hang until the stall rule.
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hold)
	f := New(Config{MaxBytes: 1000, RetryWindow: 10 * time.Second, StallWindow: 10 * time.Second})
	f.OnRetry = func(int, error, time.Duration) { t.Error("an oversized release was retried") }
	dst := filepath.Join(t.TempDir(), "out")
	start := time.Now()
	_, err := f.Download(context.Background(), srv.URL+"/big.tar.gz", dst, nil)
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "release is 2000 bytes, over the plugin's max_download_mb (1000 bytes)") {
		t.Fatalf("err = %v, want a permanent error naming the size and max_download_mb", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("refused after %s: the body was waited for", d)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Size() != 0 {
		t.Fatalf("dst: %v, %v; want an empty file", fi, err)
	}
}

// A server that sends no Content-Length and more than MaxBytes is cut off
// at MaxBytes+1 at most.
func TestDownloadCutsALiarAtMax(t *testing.T) {
	const maxBytes = 100_000
	var sent atomic.Int64
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		chunk := []byte(strings.Repeat("z", 16<<10))
		for sent.Load() < 256<<20 {
			n, err := w.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	dst := filepath.Join(t.TempDir(), "out")
	_, err := New(Config{MaxBytes: maxBytes}).Download(context.Background(), srv.URL+"/liar.tar.gz", dst, nil)
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "release is more than 100000 bytes, over the plugin's max_download_mb") {
		t.Fatalf("err = %v, want a permanent error naming max_download_mb", err)
	}
	fi, err := os.Stat(dst)
	if err != nil || fi.Size() > maxBytes+1 {
		t.Fatalf("dst: %v, %v; want at most %d bytes on disk", fi, err, maxBytes+1)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the server is still sending: the connection was not closed")
	}
	if s := sent.Load(); s >= 256<<20 {
		t.Fatalf("the server sent all %d bytes: the download was not stopped", s)
	}
}

func TestDownloadRefusesAFileOverMax(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "app.tar.gz")
	if err := os.WriteFile(src, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	_, err := New(Config{MaxBytes: 2 << 20, FileRoots: []string{dir}}).Download(context.Background(), src, dst, nil)
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "release is 3145728 bytes, over the plugin's max_download_mb (2 MiB)") {
		t.Fatalf("err = %v, want a permanent error naming the size and max_download_mb", err)
	}
	if fi, err := os.Stat(dst); err != nil || fi.Size() != 0 {
		t.Fatalf("dst: %v, %v; want an empty file", fi, err)
	}
}

func TestChecksumRefusesABigSidecar(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("ab", 32) + strings.Repeat(" ", 8<<10)))
	}))
	defer srv.Close()
	_, err := New(Config{}).Checksum(context.Background(), srv.URL+"/app.tar.gz")
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "app.tar.gz.sha256 is over 4096 bytes") {
		t.Fatalf("err = %v, want a permanent error about the sidecar's size", err)
	}
}

// A store that accepts the size lookup and never answers ends the attempt
// after Stall.
func TestSizeLookupWithoutAnswer(t *testing.T) {
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(hold)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	f := New(Config{S3Endpoint: srv.URL, S3PathStyle: true, Stall: 300 * time.Millisecond})
	start := time.Now()
	_, err := f.Download(context.Background(), "s3://bucket/app.tar.gz", filepath.Join(t.TempDir(), "out"), nil)
	if err == nil || !strings.Contains(err.Error(), "no answer for 300ms") || IsPermanent(err) {
		t.Fatalf("err = %v, want a transient no-answer error", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("no answer detected after %s", d)
	}
}
