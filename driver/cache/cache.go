// Package cache keeps release tarballs on a node, addressed by their
// sha256, so that a release is downloaded once per node however many
// allocations use it.
//
// It is safe across processes: every entry has a lock file taken with
// flock(2), so two plugin instances (after a restart, or two Nomad clients
// sharing a data directory) never download the same release twice at once
// or see a half-written entry. Entries are written to a temporary file,
// verified and renamed into place; they are verified again before each use,
// and a corrupt one is fetched again. Eviction is least recently used, down
// to a size limit, and skips entries that running tasks hold.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Cache is a directory of verified tarballs.
type Cache struct {
	dir      string
	maxBytes int64
}

// Stats says what Get did.
type Stats struct {
	Hit     bool  // served from the cache
	Fetched int64 // bytes downloaded
	Waited  bool  // waited for another download of the same release
}

var hexPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// New opens (creating) a cache in dir that evicts down to maxBytes; zero
// or less means no limit.
func New(dir string, maxBytes int64) (*Cache, error) {
	for _, d := range []string{dir, filepath.Join(dir, "refs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("cache: %w", err)
		}
	}
	return &Cache{dir: dir, maxBytes: maxBytes}, nil
}

// Fetch downloads a release into the file at path and returns the bytes
// written. The cache verifies the file afterwards.
type Fetch func(path string) (int64, error)

// ErrChecksum is returned by Get when fetched content does not match.
var ErrChecksum = errors.New("sha256 mismatch")

// ChecksumError is a fetched file whose digest is not the expected one.
type ChecksumError struct{ Want, Got string }

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("sha256 mismatch: expected %s, got %s", e.Want, e.Got)
}

func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }

// Get returns the path of the verified tarball with the given sha256,
// calling fetch when the cache does not hold it. Concurrent calls for the
// same sha256, in this process or another, wait for one download.
//
// When holder is not empty, the entry is held for it (see Hold) before the
// entry's lock is released, so eviction cannot take it in between.
func (c *Cache) Get(sum, holder string, fetch Fetch) (string, Stats, error) {
	sum = strings.ToLower(sum)
	if !hexPattern.MatchString(sum) {
		return "", Stats{}, fmt.Errorf("cache: %q is not a sha256", sum)
	}
	var st Stats
	unlock, waited, err := lock(filepath.Join(c.dir, sum+".lock"))
	if err != nil {
		return "", st, err
	}
	defer unlock()
	st.Waited = waited

	path := c.path(sum)
	if _, err := os.Stat(path); err == nil {
		if got, err := digest(path); err == nil && got == sum {
			now := time.Now()
			_ = os.Chtimes(path, now, now) // most recently used
			st.Hit = true
			return path, st, c.hold(sum, holder)
		}
		// Corrupt or unreadable: fetch it again, and rebuild its tree.
		_ = os.Remove(path)
		c.trash(filepath.Join(c.dir, sum+".d"))
	}

	tmp, err := os.CreateTemp(c.dir, sum+".*.part")
	if err != nil {
		return "", st, fmt.Errorf("cache: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	n, err := fetch(tmp.Name())
	st.Fetched = n
	if err != nil {
		return "", st, err
	}
	got, err := digest(tmp.Name())
	if err != nil {
		return "", st, fmt.Errorf("cache: %w", err)
	}
	if got != sum {
		return "", st, &ChecksumError{Want: sum, Got: got}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", st, fmt.Errorf("cache: %w", err)
	}
	if err := c.hold(sum, holder); err != nil {
		return "", st, err
	}
	c.evict()
	return path, st, nil
}

func (c *Cache) hold(sum, holder string) error {
	if holder == "" {
		return nil
	}
	return c.Hold(sum, holder)
}

// Tree returns a directory derived from the verified tarball sum (its
// unpacked contents), building it once with build under the entry's lock.
// The tarball must be in the cache (Get first). Trees are kept and evicted
// with their tarball.
func (c *Cache) Tree(sum string, build func(dir string) error) (string, error) {
	sum = strings.ToLower(sum)
	if !hexPattern.MatchString(sum) {
		return "", fmt.Errorf("cache: %q is not a sha256", sum)
	}
	unlock, _, err := lock(filepath.Join(c.dir, sum+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	dir := filepath.Join(c.dir, sum+".d")
	if _, err := os.Stat(filepath.Join(dir, CompleteMarker)); err == nil {
		return dir, nil
	}
	c.trash(dir) // incomplete: a crash while building or removing it
	tmp, err := os.MkdirTemp(c.dir, sum+".d.*.part")
	if err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	if err := build(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, CompleteMarker), nil, 0o600); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("cache: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("cache: %w", err)
	}
	return dir, nil
}

// HasTree returns the tree of sum if it is complete.
func (c *Cache) HasTree(sum string) (string, bool) {
	dir := filepath.Join(c.dir, strings.ToLower(sum)+".d")
	_, err := os.Stat(filepath.Join(dir, CompleteMarker))
	return dir, err == nil
}

// CompleteMarker is the file Tree writes last into a tree it built.
const CompleteMarker = ".beam-driver-complete"

// trash removes a directory by first renaming it out of the way, so that a
// crash halfway leaves nothing that looks like a cached tree.
func (c *Cache) trash(dir string) {
	if _, err := os.Lstat(dir); err != nil {
		return
	}
	t := fmt.Sprintf("%s.trash.%d", dir, time.Now().UnixNano())
	if os.Rename(dir, t) == nil {
		_ = os.RemoveAll(t)
	}
}

// Hold marks the release as used by a task, so that eviction keeps it.
func (c *Cache) Hold(sum, taskID string) error {
	d := filepath.Join(c.dir, "refs", strings.ToLower(sum))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return os.WriteFile(filepath.Join(d, safeName(taskID)), nil, 0o600)
}

// Release drops a task's hold on every release it held. It leaves the
// per-release directories, which a concurrent Hold may be writing into.
func (c *Cache) Release(taskID string) {
	sums, _ := os.ReadDir(filepath.Join(c.dir, "refs"))
	for _, s := range sums {
		_ = os.Remove(filepath.Join(c.dir, "refs", s.Name(), safeName(taskID)))
	}
}

func (c *Cache) path(sum string) string { return filepath.Join(c.dir, sum+".tar.gz") }

func (c *Cache) held(sum string) bool {
	entries, err := os.ReadDir(filepath.Join(c.dir, "refs", sum))
	return err == nil && len(entries) > 0
}

// evict removes least recently used entries that no task holds until the
// cache is under its size limit.
func (c *Cache) evict() {
	if c.maxBytes <= 0 {
		return
	}
	unlock, _, err := lock(filepath.Join(c.dir, ".evict.lock"))
	if err != nil {
		return
	}
	defer unlock()
	type entry struct {
		sum  string
		size int64
		used time.Time
	}
	var all []entry
	var total int64
	files, _ := filepath.Glob(filepath.Join(c.dir, "*.tar.gz"))
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		all = append(all, entry{strings.TrimSuffix(filepath.Base(f), ".tar.gz"), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	for _, e := range all {
		if total <= c.maxBytes {
			return
		}
		if c.held(e.sum) {
			continue
		}
		// Take the entry's own lock, so that nobody is reading it.
		u, _, err := tryLock(filepath.Join(c.dir, e.sum+".lock"))
		if err != nil {
			continue
		}
		if c.held(e.sum) { // held while we took the lock
			u()
			continue
		}
		if os.Remove(c.path(e.sum)) == nil {
			total -= e.size
		}
		c.trash(filepath.Join(c.dir, e.sum+".d"))
		u()
	}
}

// lock takes an exclusive flock on path, waiting if another holder has it,
// and reports whether it had to wait.
func lock(path string) (unlock func(), waited bool, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("cache: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		waited = true
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, false, fmt.Errorf("cache: lock %s: %w", filepath.Base(path), err)
		}
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, waited, nil
}

// tryLock is lock without waiting.
func tryLock(path string) (func(), bool, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, false, nil
}

func digest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == os.PathSeparator || r == 0 {
			return '_'
		}
		return r
	}, s)
}
