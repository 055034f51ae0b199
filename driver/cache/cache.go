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
// to a size limit that counts both tarballs and their unpacked trees, and
// skips entries that running tasks hold.
//
// Entries can be partitioned by Nomad namespace (see Namespace), so that a
// release is shared only within one namespace. The size limit, eviction and
// Release always cover the whole cache.
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
	"strings"
	"syscall"
	"time"
)

// Cache is a directory of verified tarballs, or a view of the entries of
// one namespace in it.
type Cache struct {
	root     string // the whole cache: eviction lock, size limit, namespaces
	dir      string // this view's entries: root, or root/ns/<namespace>
	maxBytes int64
}

// Stats says what Get did.
type Stats struct {
	Hit     bool  // served from the cache
	Fetched int64 // bytes downloaded
	Waited  bool  // waited for another download of the same release
}

var (
	hexPattern       = regexp.MustCompile(`^[0-9a-f]{64}$`)
	namespacePattern = regexp.MustCompile(`^[a-zA-Z0-9-]{1,128}$`)
)

// New opens (creating) a cache in dir that evicts down to maxBytes; zero
// or less means no limit. Its own entries belong to no namespace.
func New(dir string, maxBytes int64) (*Cache, error) {
	if err := makeEntryDir(dir); err != nil {
		return nil, err
	}
	return &Cache{root: dir, dir: dir, maxBytes: maxBytes}, nil
}

// Namespace returns a view of the cache whose entries belong to the Nomad
// namespace ns alone: a release fetched or unpacked in one namespace is
// never served to another. The view shares the size limit, which is global
// for the whole cache, and eviction and Release cover every namespace. A
// name that is not a Nomad namespace name ([a-zA-Z0-9-]{1,128}) is an
// error.
func (c *Cache) Namespace(ns string) (*Cache, error) {
	if !namespacePattern.MatchString(ns) {
		return nil, fmt.Errorf("cache: %q is not a Nomad namespace name", ns)
	}
	dir := filepath.Join(c.root, "ns", ns)
	if err := makeEntryDir(dir); err != nil {
		return nil, err
	}
	return &Cache{root: c.root, dir: dir, maxBytes: c.maxBytes}, nil
}

func makeEntryDir(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "refs"), 0o700); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// entryDirs lists the directories that hold entries: the root and every
// namespace's.
func (c *Cache) entryDirs() []string {
	dirs := []string{c.root}
	names, _ := os.ReadDir(filepath.Join(c.root, "ns"))
	for _, n := range names {
		if n.IsDir() && namespacePattern.MatchString(n.Name()) {
			dirs = append(dirs, filepath.Join(c.root, "ns", n.Name()))
		}
	}
	return dirs
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

// Hold marks the release as used by a task, so that eviction keeps it.
func (c *Cache) Hold(sum, taskID string) error {
	d := filepath.Join(c.dir, "refs", strings.ToLower(sum))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return os.WriteFile(filepath.Join(d, safeName(taskID)), nil, 0o600)
}

// Unhold drops a task's hold on one release.
func (c *Cache) Unhold(sum, taskID string) {
	_ = os.Remove(filepath.Join(c.dir, "refs", strings.ToLower(sum), safeName(taskID)))
}

// Release drops a task's hold on every release it held, in every
// namespace. It leaves the per-release directories, which a concurrent Hold
// may be writing into.
func (c *Cache) Release(taskID string) {
	for _, dir := range c.entryDirs() {
		sums, _ := os.ReadDir(filepath.Join(dir, "refs"))
		for _, s := range sums {
			_ = os.Remove(filepath.Join(dir, "refs", s.Name(), safeName(taskID)))
		}
	}
}

func (c *Cache) path(sum string) string { return filepath.Join(c.dir, sum+".tar.gz") }

func held(dir, sum string) bool {
	entries, err := os.ReadDir(filepath.Join(dir, "refs", sum))
	return err == nil && len(entries) > 0
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
