package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func sumOf(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fetcher writes content and counts its calls.
func fetcher(content []byte, calls *atomic.Int32) Fetch {
	return func(path string) (int64, error) {
		calls.Add(1)
		time.Sleep(50 * time.Millisecond) // long enough for others to queue
		return int64(len(content)), os.WriteFile(path, content, 0o600)
	}
}

func TestConcurrentGetsDownloadOnce(t *testing.T) {
	c, err := New(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("release tarball")
	var calls atomic.Int32
	var wg sync.WaitGroup
	var hits, fetched atomic.Int32
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, st, err := c.Get(sumOf(content), "", fetcher(content, &calls))
			if err != nil {
				t.Error(err)
				return
			}
			if b, _ := os.ReadFile(p); string(b) != string(content) {
				t.Errorf("entry holds %q", b)
			}
			if st.Hit {
				hits.Add(1)
			}
			if st.Fetched > 0 {
				fetched.Add(1)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 1 || fetched.Load() != 1 || hits.Load() != 4 {
		t.Fatalf("fetches %d, fetched %d, hits %d; want 1 download and 4 hits", calls.Load(), fetched.Load(), hits.Load())
	}
}

func TestCorruptEntryIsFetchedAgain(t *testing.T) {
	dir := t.TempDir()
	c, _ := New(dir, 0)
	content := []byte("good")
	var calls atomic.Int32
	p, _, err := c.Get(sumOf(content), "", fetcher(content, &calls))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("bitrot"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, st, err := c.Get(sumOf(content), "", fetcher(content, &calls))
	if err != nil {
		t.Fatal(err)
	}
	if st.Hit || calls.Load() != 2 {
		t.Fatalf("corrupt entry served (hit=%v, fetches=%d)", st.Hit, calls.Load())
	}
}

func TestMismatchLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	c, _ := New(dir, 0)
	var calls atomic.Int32
	want := sumOf([]byte("expected"))
	_, _, err := c.Get(want, "", fetcher([]byte("something else"), &calls))
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want a checksum error", err)
	}
	m, _ := filepath.Glob(filepath.Join(dir, "*.tar.gz*"))
	if len(m) != 0 {
		t.Fatalf("left behind: %v", m)
	}
}

func TestEvictionIsLRUAndSkipsHeld(t *testing.T) {
	dir := t.TempDir()
	c, _ := New(dir, 250) // room for two 100-byte entries
	var calls atomic.Int32
	mk := func(b byte) []byte {
		out := make([]byte, 100)
		for i := range out {
			out[i] = b
		}
		return out
	}
	a, b, d := mk('a'), mk('b'), mk('d')
	get := func(x []byte) {
		t.Helper()
		if _, _, err := c.Get(sumOf(x), "", fetcher(x, &calls)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // distinct mtimes
	}
	get(a)
	get(b)
	if err := c.Hold(sumOf(a), "task-1"); err != nil { // a is oldest but held
		t.Fatal(err)
	}
	get(d) // over the limit: b goes, a stays because it is held
	exists := func(x []byte) bool { _, err := os.Stat(c.path(sumOf(x))); return err == nil }
	if !exists(a) || exists(b) || !exists(d) {
		t.Fatalf("after eviction a=%v b=%v d=%v; want a and d kept", exists(a), exists(b), exists(d))
	}
	c.Release("task-1")
	get(b) // now a is the least recently used and unheld
	if exists(a) || !exists(b) || !exists(d) {
		t.Fatalf("after release a=%v b=%v d=%v; want a evicted", exists(a), exists(b), exists(d))
	}
}

func TestTreeRebuildsAnIncompleteTree(t *testing.T) {
	dir := t.TempDir()
	c, _ := New(dir, 0)
	sum := sumOf([]byte("x"))
	// A tree left half-built (or half-removed) by a crash.
	if err := os.MkdirAll(filepath.Join(dir, sum+".d", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	builds := 0
	build := func(d string) error {
		builds++
		return os.WriteFile(filepath.Join(d, "complete-file"), []byte("ok"), 0o644)
	}
	tree, err := c.Tree(sum, build)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tree, "complete-file")); err != nil || builds != 1 {
		t.Fatalf("incomplete tree reused (builds=%d, err=%v)", builds, err)
	}
	if _, err := c.Tree(sum, build); err != nil || builds != 1 {
		t.Fatalf("complete tree rebuilt (builds=%d, err=%v)", builds, err)
	}
}
