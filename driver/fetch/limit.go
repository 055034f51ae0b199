package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
)

// defaultMaxBytes is the size cap when Config.MaxBytes is zero, the
// unpacker's own limit.
const defaultMaxBytes = 4 << 30

// sidecarMax caps a .sha256 file: it is one line.
const sidecarMax = 4 << 10

// limit is the most bytes one download may bring, and the error for a
// download that brings more.
type limit struct {
	max int64
	// over returns the error for an object of n bytes, or for one known
	// only to be over max when n < 0.
	over func(n int64) error
}

// releaseLimit caps a release tarball at max bytes.
func releaseLimit(max int64) limit {
	return limit{max: max, over: func(n int64) error {
		size := fmt.Sprintf("%d bytes", n)
		if n < 0 {
			size = fmt.Sprintf("more than %d bytes", max)
		}
		return permanent("release is %s, over the plugin's max_download_mb (%s); "+
			"raise max_download_mb in the plugin config or shrink the release", size, mib(max))
	}}
}

// sidecarLimit caps the .sha256 file side.
func sidecarLimit(side string) limit {
	return limit{max: sidecarMax, over: func(int64) error {
		return permanent("%s is over %d bytes; a .sha256 file holds one line, the output of sha256sum", Redact(side), sidecarMax)
	}}
}

// mib shows a byte count in MiB when it is a whole number of them.
func mib(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

// errTooBig is what a sink returns once a download passes its limit; the
// attempt replaces it with the limit's own error.
var errTooBig = errors.New("download over the size limit")

// sink is where a download goes: it counts the bytes in p and never lets
// the file grow past lim.max.
type sink struct {
	f        *os.File
	p        *progressCounter
	lim      limit
	written  int64 // by Write, which one goroutine calls
	exceeded atomic.Bool
}

// Write appends b, sequentially.
func (s *sink) Write(b []byte) (int, error) {
	room := s.lim.max - s.written
	var full bool
	if int64(len(b)) > room {
		b, full = b[:room], true
	}
	n, err := s.f.Write(b)
	s.written += int64(n)
	s.p.add(int64(n))
	if err == nil && full {
		s.exceeded.Store(true)
		err = errTooBig
	}
	return n, err
}

// WriteAt writes b at off, for the concurrent parts of an S3 download.
func (s *sink) WriteAt(b []byte, off int64) (int, error) {
	var full bool
	if end := off + int64(len(b)); end > s.lim.max {
		b, full = b[:max(s.lim.max-off, 0)], true
	}
	n, err := s.f.WriteAt(b, off)
	s.p.add(int64(n))
	if err == nil && full {
		s.exceeded.Store(true)
		err = errTooBig
	}
	return n, err
}

// copyTo copies r into w, stopping when ctx ends.
func copyTo(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, 256<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			k, err := w.Write(buf[:m])
			n += int64(k)
			if errors.Is(err, errTooBig) {
				return n, err
			}
			if err != nil {
				return n, &PermanentError{err}
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// DownloadSmall fetches a small file, such as a deploy pointer, refusing
// it once it passes max bytes.
func (f *Fetcher) DownloadSmall(ctx context.Context, source, dst string, max int64) (int64, error) {
	return f.get(ctx, source, dst, limit{max: max, over: func(int64) error {
		return permanent("%s is over %d bytes", Redact(source), max)
	}}, nil)
}
