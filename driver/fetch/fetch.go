// Package fetch downloads a release tarball from its source into a local
// file and verifies its sha256 on the way.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Progress is called now and then while a download runs, with the bytes
// written so far and the total size, or -1 when the size is unknown.
type Progress func(done, total int64)

// Fetcher downloads release tarballs.
type Fetcher struct {
	// HTTP is the client for http:// and https:// sources.
	HTTP *http.Client
	// Every is how often Progress is called while a download runs.
	Every time.Duration
}

// New returns a Fetcher with sensible timeouts.
func New() *Fetcher {
	return &Fetcher{
		HTTP: &http.Client{
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				ResponseHeaderTimeout: 30 * time.Second,
				TLSHandshakeTimeout:   10 * time.Second,
				IdleConnTimeout:       30 * time.Second,
			},
		},
		Every: 2 * time.Second,
	}
}

// Result describes a completed download.
type Result struct {
	Path   string // the downloaded file
	Size   int64
	SHA256 string // lowercase hex
}

// ChecksumError is a download whose content does not match the expected
// sha256.
type ChecksumError struct {
	Source, Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("sha256 mismatch for %s: expected %s, got %s; "+
		"check release.sha256 in the task config or republish the tarball", e.Source, e.Want, e.Got)
}

// Fetch downloads source into the file dst and checks it against the
// lowercase hex sha256 want, when want is not empty. On any error dst is
// removed.
func (f *Fetcher) Fetch(ctx context.Context, source, want, dst string, progress Progress) (res *Result, err error) {
	body, total, err := f.open(ctx, source)
	if err != nil {
		return nil, err
	}
	defer body.Close()

	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("fetch: %w", cerr)
		}
		if err != nil {
			os.Remove(dst)
		}
	}()

	h := sha256.New()
	w := &counter{w: io.MultiWriter(out, h)}
	stop := f.report(w, total, progress)
	_, err = io.Copy(w, contextReader{ctx, body})
	stop()
	if err != nil {
		return nil, fmt.Errorf("fetch %s: download interrupted after %d bytes: %w", Redact(source), w.n, err)
	}
	if total >= 0 && w.n != total {
		return nil, fmt.Errorf("fetch %s: got %d of %d bytes; the download was cut short", Redact(source), w.n, total)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && !strings.EqualFold(want, got) {
		return nil, &ChecksumError{Source: Redact(source), Want: strings.ToLower(want), Got: got}
	}
	return &Result{Path: dst, Size: w.n, SHA256: got}, nil
}

// open returns the content of source and its size, or -1.
func (f *Fetcher) open(ctx context.Context, source string) (io.ReadCloser, int64, error) {
	u, err := url.Parse(source)
	if err != nil {
		return nil, 0, fmt.Errorf("release.source %q is not a valid URL: %w", Redact(source), err)
	}
	switch u.Scheme {
	case "", "file":
		p := u.Path
		if u.Scheme == "" {
			p = source
		}
		if !filepath.IsAbs(p) {
			return nil, 0, fmt.Errorf("release.source %q: a local path must be absolute (file:///path/to/app.tar.gz)", source)
		}
		file, err := os.Open(p)
		if err != nil {
			return nil, 0, fmt.Errorf("fetch %s: %w", source, err)
		}
		fi, err := file.Stat()
		if err != nil {
			file.Close()
			return nil, 0, fmt.Errorf("fetch %s: %w", source, err)
		}
		if !fi.Mode().IsRegular() {
			file.Close()
			return nil, 0, fmt.Errorf("fetch %s: not a regular file", source)
		}
		return file, fi.Size(), nil
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, source, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("fetch %s: %w", Redact(source), err)
		}
		resp, err := f.HTTP.Do(req)
		if err != nil {
			return nil, 0, fmt.Errorf("fetch %s: %w", Redact(source), scrub(err, source))
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("fetch %s: server answered %s", Redact(source), resp.Status)
		}
		return resp.Body, resp.ContentLength, nil
	default:
		return nil, 0, fmt.Errorf("release.source %q: unsupported scheme %q; use file://, http:// or https://", Redact(source), u.Scheme)
	}
}

// report calls progress every f.Every until the returned stop is called.
func (f *Fetcher) report(c *counter, total int64, progress Progress) (stop func()) {
	if progress == nil || f.Every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(f.Every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress(c.load(), total)
			}
		}
	}()
	return func() { close(done); <-exited }
}

// Redact removes user info and query strings, which may hold credentials
// or signed-URL tokens, from a source before it goes into an error or event.
func Redact(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.Scheme == "" {
		return source
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		u.RawQuery = "REDACTED"
	}
	return u.String()
}

// scrub rewrites an error from net/http, which quotes the full URL, so that
// it quotes the redacted one.
func scrub(err error, source string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s", strings.ReplaceAll(ue.Err.Error(), source, Redact(source)))
	}
	return err
}

type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
