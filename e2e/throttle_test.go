//go:build e2e

package e2e

import (
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// throttledServer serves the release directory with its total bandwidth
// capped, as a store behind a slow link would, and counts the bytes sent.
type throttledServer struct {
	URL  string
	srv  *http.Server
	sent atomic.Int64

	mu   sync.Mutex
	rate float64 // bytes per second, shared by every download
	next time.Time
}

func serveThrottled(dir string, bitsPerSecond float64) (*throttledServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &throttledServer{URL: "http://" + l.Addr().String(), rate: bitsPerSecond / 8}
	s.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(filepath.Join(dir, filepath.Base(r.URL.Path)))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		defer f.Close()
		fi, _ := f.Stat()
		w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
		buf := make([]byte, 32<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				s.wait(n)
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				s.sent.Add(int64(n))
			}
			if err == io.EOF || err != nil {
				return
			}
		}
	})}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

// wait blocks until n more bytes fit in the shared bandwidth.
func (s *throttledServer) wait(n int) {
	s.mu.Lock()
	now := time.Now()
	if s.next.Before(now) {
		s.next = now
	}
	s.next = s.next.Add(time.Duration(float64(n) / s.rate * float64(time.Second)))
	at := s.next
	s.mu.Unlock()
	time.Sleep(time.Until(at))
}

func (s *throttledServer) Close() { _ = s.srv.Close() }
