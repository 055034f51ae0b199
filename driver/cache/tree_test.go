package cache

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func namespace(t *testing.T, c *Cache, ns string) *Cache {
	t.Helper()
	v, err := c.Namespace(ns)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// buildFile returns a build func that writes one file of n bytes.
func buildFile(n int) func(string) error {
	return func(d string) error {
		return os.WriteFile(filepath.Join(d, "lib.beam"), bytes.Repeat([]byte("x"), n), 0o644)
	}
}

func TestNamespacesDoNotShare(t *testing.T) {
	c, err := New(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := namespace(t, c, "team-a"), namespace(t, c, "team-b")
	content := []byte("release")
	var calls atomic.Int32
	if _, _, err := a.Get(sumOf(content), "", fetcher(content, &calls)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Tree(sumOf(content), buildFile(10)); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.HasTree(sumOf(content)); ok {
		t.Error("namespace b sees namespace a's tree")
	}
	_, st, err := b.Get(sumOf(content), "", fetcher(content, &calls))
	if err != nil {
		t.Fatal(err)
	}
	if st.Hit || calls.Load() != 2 {
		t.Errorf("namespace b was served namespace a's tarball (hit=%v, fetches=%d)", st.Hit, calls.Load())
	}
	if _, st, _ := namespace(t, c, "team-a").Get(sumOf(content), "", fetcher(content, &calls)); !st.Hit {
		t.Error("a second view of namespace a does not see its entry")
	}
	for _, bad := range []string{"", "..", "a/b", "a_b", "../../etc", "ns.1", strings.Repeat("a", 129)} {
		if _, err := c.Namespace(bad); err == nil {
			t.Errorf("Namespace(%q) accepted", bad)
		}
	}
}

func TestTreesCountTowardTheLimit(t *testing.T) {
	dir := t.TempDir()
	c, _ := New(dir, 300) // tarballs are 10 bytes, trees 200
	one, two := namespace(t, c, "one"), namespace(t, c, "two")
	var calls atomic.Int32
	x, y := []byte("tarball-x!"), []byte("tarball-y!")
	if _, _, err := one.Get(sumOf(x), "", fetcher(x, &calls)); err != nil {
		t.Fatal(err)
	}
	treeX, err := one.Tree(sumOf(x), buildFile(200))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(treeX, CompleteMarker)); string(b) != "200" {
		t.Errorf("marker holds %q, want the tree's size", b)
	}
	time.Sleep(20 * time.Millisecond) // distinct mtimes
	// Tarballs alone (20 bytes) are far under the limit; with the trees
	// (420 bytes) they are over it, and x, unheld and in another namespace,
	// goes to make room for y's tree.
	if _, _, err := two.Get(sumOf(y), "", fetcher(y, &calls)); err != nil {
		t.Fatal(err)
	}
	if _, ok := one.HasTree(sumOf(x)); !ok {
		t.Fatal("x's tree evicted before the limit was reached")
	}
	treeY, err := two.Tree(sumOf(y), buildFile(200))
	if err != nil {
		t.Fatal(err)
	}
	if exists(one.path(sumOf(x))) || exists(treeX) {
		t.Errorf("x kept (tarball %v, tree %v), want both evicted", exists(one.path(sumOf(x))), exists(treeX))
	}
	if !exists(two.path(sumOf(y))) || !exists(treeY) {
		t.Error("y, just built, was evicted")
	}

	// A held entry stays, however old: y, held, is older than x, and both
	// stay over the limit when x is built again.
	if err := two.Hold(sumOf(y), "task-1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, _, err := one.Get(sumOf(x), "", fetcher(x, &calls)); err != nil {
		t.Fatal(err)
	}
	if _, err := one.Tree(sumOf(x), buildFile(200)); err != nil {
		t.Fatal(err)
	}
	if !exists(treeX) || !exists(treeY) {
		t.Fatalf("x tree %v, y tree %v; want both kept, y because it is held", exists(treeX), exists(treeY))
	}
	// Release, through the view of no namespace, drops the hold in
	// namespace two; the next eviction takes y.
	c.Release("task-1")
	z := []byte("z")
	if _, _, err := one.Get(sumOf(z), "", fetcher(z, &calls)); err != nil {
		t.Fatal(err)
	}
	if !exists(treeX) || exists(treeY) || exists(two.path(sumOf(y))) {
		t.Errorf("after release: x tree %v, y tree %v; want y evicted", exists(treeX), exists(treeY))
	}
}

func TestTreeDoesNotWriteThroughAPlantedMarker(t *testing.T) {
	for _, kind := range []string{"hard link", "symlink", "file below"} {
		t.Run(kind, func(t *testing.T) {
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("host file"), 0o644); err != nil {
				t.Fatal(err)
			}
			c, _ := New(t.TempDir(), 0)
			sum := sumOf([]byte("x"))
			tree, err := c.Tree(sum, func(d string) error {
				switch kind {
				case "hard link":
					return os.Link(victim, filepath.Join(d, CompleteMarker))
				case "symlink":
					return os.Symlink(victim, filepath.Join(d, CompleteMarker))
				}
				if err := os.Mkdir(filepath.Join(d, "lib"), 0o755); err != nil {
					return err
				}
				return os.WriteFile(filepath.Join(d, "lib", CompleteMarker), nil, 0o644)
			})
			if err == nil || !strings.Contains(err.Error(), "reserves") {
				t.Fatalf("Tree = %v, want a refusal of the planted marker", err)
			}
			if b, _ := os.ReadFile(victim); string(b) != "host file" {
				t.Errorf("victim now holds %q", b)
			}
			if _, ok := c.HasTree(sum); ok || exists(tree) {
				t.Error("a tree with a planted marker was kept")
			}
			if m, _ := filepath.Glob(filepath.Join(c.dir, "*.part")); len(m) != 0 {
				t.Errorf("left behind: %v", m)
			}
		})
	}
}
