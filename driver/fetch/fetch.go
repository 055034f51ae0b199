// Package fetch downloads release tarballs from S3, GCS, HTTP(S) or a local
// path into a file, retrying transient failures with backoff.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Progress is called now and then while a download runs, with the bytes
// written so far and the total size, or -1 when the size is unknown.
type Progress func(done, total int64)

// Config configures a Fetcher.
type Config struct {
	// S3Endpoint and S3PathStyle reach S3-compatible stores; S3Region is
	// the default region. Credentials come from the standard AWS chain.
	S3Endpoint  string
	S3Region    string
	S3PathStyle bool
	// RetryWindow bounds how long transient failures (connection refused,
	// timeouts, 5xx) are retried. Zero means no retries.
	RetryWindow time.Duration
	// Backoff is the first wait between attempts; it doubles up to 10 s.
	Backoff time.Duration
	// Every is how often Progress is called while a download runs.
	Every time.Duration
	// MaxBytes is the largest tarball accepted. A larger one is refused
	// before the download when the store tells its size, and cut off as
	// soon as it passes MaxBytes otherwise; both are permanent failures.
	// Zero means 4 GiB.
	MaxBytes int64
	// MinRate, in bytes a second, and StallWindow end an attempt, as a
	// transient failure, that receives fewer than MinRate*StallWindow
	// bytes over any full StallWindow once its download has begun. Zero
	// means 10 KiB/s and 30 s.
	MinRate     int64
	StallWindow time.Duration
	// Stall bounds the wait for the size lookup (a HEAD or stat), before
	// any data is due. Zero means StallWindow.
	Stall time.Duration
	// FileRoots lists the absolute directories that file:// and
	// absolute-path sources may read from; symbolic links may not lead
	// out of them. Empty turns file sources off.
	FileRoots []string
}

// Fetcher downloads release tarballs.
type Fetcher struct {
	cfg     Config
	schemes map[string]source
	// policy, when set, is checked before any request; see WithPolicy.
	policy *Policy
	// OnRetry, when set, is told about each transient failure before the
	// wait that follows it.
	OnRetry func(attempt int, err error, wait time.Duration)
}

// WithRetry returns a fetcher that shares f's stores and tells onRetry
// about each transient failure: one per task, from one per plugin.
func (f *Fetcher) WithRetry(onRetry func(attempt int, err error, wait time.Duration)) *Fetcher {
	c := *f
	c.OnRetry = onRetry
	return &c
}

// source is one kind of store.
type source interface {
	// download writes the object at u into out and returns its size. It
	// refuses an object it learns is over out.lim.max before reading it,
	// and tells out.p the total if it learns it.
	download(ctx context.Context, u *url.URL, out *sink) (int64, error)
	// size returns the object's size, or -1 when unknown, before download.
	size(ctx context.Context, u *url.URL) (int64, error)
}

// New returns a Fetcher for file://, http(s)://, s3:// and gs:// sources.
func New(cfg Config) *Fetcher {
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.Every <= 0 {
		cfg.Every = 2 * time.Second
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = defaultMaxBytes
	}
	if cfg.MinRate <= 0 {
		cfg.MinRate = defaultMinRate
	}
	if cfg.StallWindow <= 0 {
		cfg.StallWindow = defaultStallWindow
	}
	if cfg.Stall <= 0 {
		cfg.Stall = cfg.StallWindow
	}
	var roots []string
	for _, r := range cfg.FileRoots {
		if filepath.IsAbs(r) {
			roots = append(roots, filepath.Clean(r))
		}
	}
	cfg.FileRoots = roots
	h := newHTTPSource()
	return &Fetcher{
		cfg: cfg,
		schemes: map[string]source{
			"file":  fileSource{roots: roots},
			"http":  h,
			"https": h,
			"s3":    newS3Source(cfg),
			"gs":    &gcsSource{},
		},
	}
}

// Schemes lists the source schemes the fetcher supports.
var Schemes = []string{"file", "http", "https", "s3", "gs"}

// PermanentError is a failure that retrying cannot fix: a missing object,
// denied access, a malformed source.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

func permanent(format string, args ...any) error {
	return &PermanentError{fmt.Errorf(format, args...)}
}

// ErrDenied matches failures where the store refused access.
var ErrDenied = errors.New("access denied")

type deniedError struct{ msg string }

func (e *deniedError) Error() string        { return e.msg }
func (e *deniedError) Is(target error) bool { return target == ErrDenied }

func denied(format string, args ...any) error {
	return &PermanentError{&deniedError{fmt.Sprintf(format, args...)}}
}

// IsPermanent reports whether err is not worth retrying.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p) || errors.Is(err, context.Canceled)
}

// NotFound is a source whose object does not exist.
type NotFound struct{ Source string }

func (e *NotFound) Error() string {
	return fmt.Sprintf("%s does not exist; check release.source and that the release was published", e.Source)
}

// Download fetches source into the file dst and returns its size. It
// retries transient failures within the retry window, starting each
// attempt afresh. A source over Config.MaxBytes is refused.
func (f *Fetcher) Download(ctx context.Context, source, dst string, progress Progress) (int64, error) {
	return f.get(ctx, source, dst, releaseLimit(f.cfg.MaxBytes), progress)
}

// Stat returns the size of the object at source, or why it cannot be
// read: with a policy or an identity, a caller proves with it that it may
// have what the node's cache holds under the same sha256.
func (f *Fetcher) Stat(ctx context.Context, source string) (int64, error) {
	u, src, err := f.resolve(source)
	if err != nil {
		return 0, err
	}
	n, err := src.size(ctx, u)
	if err != nil {
		return 0, fmt.Errorf("fetch %s: %w", Redact(source), err)
	}
	return n, nil
}

// withSource returns a copy of f whose schemes are served by src.
func (f *Fetcher) withSource(src source, schemes ...string) *Fetcher {
	c := *f
	c.schemes = make(map[string]source, len(f.schemes))
	for k, v := range f.schemes {
		c.schemes[k] = v
	}
	for _, s := range schemes {
		c.schemes[s] = src
	}
	return &c
}

func (f *Fetcher) get(ctx context.Context, source, dst string, lim limit, progress Progress) (int64, error) {
	u, src, err := f.resolve(source)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(f.cfg.RetryWindow)
	wait := f.cfg.Backoff
	for attempt := 1; ; attempt++ {
		n, err := f.once(ctx, u, src, dst, lim, progress)
		if err == nil {
			return n, nil
		}
		err = fmt.Errorf("fetch %s: %w", Redact(source), err)
		if IsPermanent(err) || ctx.Err() != nil {
			return 0, err
		}
		if time.Now().Add(wait).After(deadline) {
			if f.cfg.RetryWindow > 0 {
				return 0, fmt.Errorf("%w (gave up after %d attempts in %s)", err, attempt, f.cfg.RetryWindow)
			}
			return 0, err
		}
		if f.OnRetry != nil {
			f.OnRetry(attempt, err, wait)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}

func (f *Fetcher) once(ctx context.Context, u *url.URL, src source, dst string, lim limit, progress Progress) (int64, error) {
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return 0, &PermanentError{err}
	}
	defer out.Close()
	// A store that accepts the connection and never answers must not hold
	// the task forever.
	sctx, scancel := context.WithTimeoutCause(ctx, f.cfg.Stall, errNoAnswer)
	total, err := src.size(sctx, u)
	noAnswer := errors.Is(context.Cause(sctx), errNoAnswer)
	scancel()
	if err != nil && noAnswer {
		return 0, fmt.Errorf("no answer for %s", f.cfg.Stall)
	}
	if err != nil {
		return 0, err
	}
	if total > lim.max {
		return 0, lim.over(total)
	}
	done := newProgressCounter(total)
	w := &sink{f: out, p: done, lim: lim}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go f.watch(ctx, done, cancel)
	stop := f.report(done, progress)
	n, err := src.download(ctx, u, w)
	stop()
	switch {
	case w.exceeded.Load():
		return 0, lim.over(-1)
	case err != nil && errors.Is(context.Cause(ctx), errStalled):
		return 0, f.stalled(done.load())
	case err != nil:
		return 0, err
	}
	if total >= 0 && n != total {
		return 0, fmt.Errorf("got %d of %d bytes; the download was cut short", n, total)
	}
	return n, out.Sync()
}

// Checksum reads the sha256 published next to a tarball, in
// <source>.sha256 (the sha256sum format: the digest, then anything).
func (f *Fetcher) Checksum(ctx context.Context, source string) (string, error) {
	side := sidecar(source)
	tmp, err := os.CreateTemp("", "beam-sha256-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if _, err := f.get(ctx, side, tmp.Name(), sidecarLimit(side), nil); err != nil {
		return "", err
	}
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		return "", err
	}
	// Only a digest is ever quoted: the file is the store's, and
	// anything else in it is not the driver's to repeat.
	fields := strings.Fields(string(b))
	if len(fields) == 0 || !isHexDigest(fields[0]) {
		return "", permanent("%s does not hold a sha256 (expected the output of sha256sum)", Redact(side))
	}
	return strings.ToLower(fields[0]), nil
}

// isHexDigest reports whether s is a sha256 in hex: 64 hex digits.
func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// sidecar returns the source of the .sha256 file next to source, without
// the query string: a presigned URL's signature covers only the tarball.
func sidecar(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.Scheme == "" {
		return source + ".sha256"
	}
	u.Path += ".sha256"
	if u.Opaque != "" {
		u.Opaque += ".sha256"
	}
	u.RawQuery = ""
	return u.String()
}

// resolve checks source against the policy, before any request, and
// returns its URL and store.
func (f *Fetcher) resolve(source string) (*url.URL, source, error) {
	if err := f.policy.Check(source); err != nil {
		return nil, nil, err
	}
	return f.parse(source)
}

func (f *Fetcher) parse(source string) (*url.URL, source, error) {
	if strings.HasPrefix(source, "/") {
		source = "file://" + source
	}
	u, err := url.Parse(source)
	if err != nil {
		// The parse error itself may quote part of a password.
		return nil, nil, permanent("release.source %q is not a valid URL; percent-encode special characters in it", Redact(source))
	}
	src, ok := f.schemes[u.Scheme]
	if !ok {
		return nil, nil, permanent("release.source %q: unsupported scheme %q; use s3://, gs://, https://, http:// or file://", Redact(source), u.Scheme)
	}
	return u, src, nil
}

// report calls progress every f.cfg.Every until the returned stop is
// called.
func (f *Fetcher) report(c *progressCounter, progress Progress) (stop func()) {
	if progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(f.cfg.Every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress(c.load(), c.total.Load())
			}
		}
	}()
	return func() { close(done); <-exited }
}

// Redact removes user info and query strings, which may hold credentials
// or signed-URL tokens, from a source before it goes into an error or event.
func Redact(source string) string {
	u, err := url.Parse(source)
	if err != nil {
		// Unparseable: keep the scheme, drop what may hold a password.
		if i := strings.Index(source, "://"); i >= 0 {
			return source[:i+3] + "<unparseable>"
		}
		return "<unparseable source>"
	}
	if u.Scheme == "" || u.Opaque != "" {
		if strings.ContainsAny(source, "@?") {
			return "<source with credentials>"
		}
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
