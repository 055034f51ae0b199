package unpack

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chain is n directories "a", each in the one before.
func chain(n int) string {
	return strings.Repeat("a/", n-1) + "a"
}

// linksInto is the 2,047-deep chain of the review (as deep as 4,096 bytes
// of name allow) and n links into its bottom.
func linksInto(depth, n int) []entry {
	es := []entry{dir(chain(depth) + "/")}
	for i := range n {
		es = append(es, symlink(fmt.Sprintf("l%d", i), chain(depth)))
	}
	return es
}

// refused unpacks entries with lim and wants an *Error whose reason holds
// reason: the limit or budget that bounds the work. BenchmarkBombs
// measures what the refusals cost.
func refused(t *testing.T, lim Limits, reason string, entries ...entry) {
	t.Helper()
	data := archive(t, true, entries...)
	err := Reader(bytes.NewReader(data), t.TempDir(), lim)
	var ue *Error
	if !errors.As(err, &ue) || !strings.Contains(ue.Reason, reason) {
		t.Fatalf("error %v, want an *Error with %q", err, reason)
	}
	if len(err.Error()) > 400 {
		t.Errorf("error is %d bytes long", len(err.Error()))
	}
}

func TestReaderRefusesDeepNames(t *testing.T) {
	t.Run("2047-deep chain and 20 links", func(t *testing.T) {
		refused(t, Limits{}, "more than 128 path components", linksInto(2047, 20)...)
	})
	t.Run("chain built one directory at a time", func(t *testing.T) {
		var es []entry
		for i := 1; i <= 200; i++ {
			es = append(es, dir(chain(i)+"/"))
		}
		refused(t, Limits{}, "more than 128 path components", es...)
	})
	t.Run("deep link target", func(t *testing.T) {
		refused(t, Limits{}, "symlink target has more than 128 path components",
			dir("a/"), symlink("l", strings.Repeat("a/../", 700)+"a"))
	})
	t.Run("file at the bottom of a deep chain", func(t *testing.T) {
		refused(t, Limits{}, "more than 128 path components", file(chain(129), "x"))
	})
}

func TestReaderBudgets(t *testing.T) {
	t.Run("links into a chain at the depth limit", func(t *testing.T) {
		// 127 deep (with the link's own name at the root); each link
		// costs some 8,000 lookups.
		refused(t, Limits{MaxEntries: 1000}, "too many link resolutions", linksInto(127, 500)...)
	})
	t.Run("files at the bottom of a chain at the depth limit", func(t *testing.T) {
		es := []entry{dir(chain(127) + "/")}
		for i := range 500 {
			es = append(es, file(fmt.Sprintf("%s/f%d", chain(127), i), ""))
		}
		refused(t, Limits{MaxEntries: 1000}, "too many and too deep", es...)
	})
	t.Run("implied directories count as entries", func(t *testing.T) {
		refused(t, Limits{MaxEntries: 10}, "counting the directories that entries imply", file(chain(20)+"/f", "x"))
	})
	t.Run("names kept in memory", func(t *testing.T) {
		u := &unpacker{names: maxNameBytes - 3}
		if err := u.keep("abc"); err != nil {
			t.Fatal(err)
		}
		if err := u.keep("d"); err == nil || !strings.Contains(err.Error(), "add up to more than") {
			t.Fatalf("error %v, want the name budget exhausted", err)
		}
	})
}

// The review's archive, at the depth limit instead of 2,047 deep, is no
// bomb: it unpacks at once, and so does a release as deep as a real one
// gets.
func TestReaderUnpacksDeepTrees(t *testing.T) {
	deep := "app/lib/web-1.0.0/priv/static/assets/" + chain(40) + "/app.js"
	for name, es := range map[string][]entry{
		"links into a chain at the depth limit": linksInto(127, 20),
		"a deep priv/static tree": {
			file(deep, "js"),
			symlink("app/lib/web-1.0.0/priv/static/latest", "assets/"+chain(40)),
			symlink("app/lib/web-1.0.0/priv/static/assets/"+chain(40)+"/up", strings.Repeat("../", 40)+"a"),
		},
	} {
		t.Run(name, func(t *testing.T) {
			dst := t.TempDir()
			if err := Reader(bytes.NewReader(archive(t, true, es...)), dst, Limits{}); err != nil {
				t.Fatal(err)
			}
		})
	}
	dst := t.TempDir()
	if err := Reader(bytes.NewReader(archive(t, true, file(deep, "js"))), dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, deep)); err != nil || string(b) != "js" {
		t.Fatalf("read back %q, %v", b, err)
	}
}

// An archive may replace directory after directory with a file: each
// replacement forgets the known directories instead of searching them (a
// search made 100,000 replacements quadratic), and what is unpacked
// afterwards is still checked against the disk.
func TestReaderReplacesDirectories(t *testing.T) {
	const n = 500
	var es []entry
	for i := range n {
		es = append(es, dir(fmt.Sprintf("d%d/", i)))
	}
	for i := range n {
		es = append(es, file(fmt.Sprintf("d%d", i), "x"), file(fmt.Sprintf("d%d", i), "y"))
	}
	es = append(es, hardlink("h", "d7"), file("d8/x", "below a file"))
	dst := t.TempDir()
	err := Reader(bytes.NewReader(archive(t, true, es...)), dst, Limits{})
	var ue *Error
	if !errors.As(err, &ue) || ue.Entry != "d8/x" || !strings.Contains(ue.Reason, `path "d8" is not a directory`) {
		t.Fatalf("error %v, want d8/x refused below the file d8", err)
	}
	err = Reader(bytes.NewReader(archive(t, true, dir("d/e/"), file("d", "x"), file("d/e/f", "x"))), t.TempDir(), Limits{})
	if !errors.As(err, &ue) || ue.Entry != "d" {
		t.Fatalf("error %v, want the file d refused over the directory d/ that holds e/", err)
	}
}

// Names and targets are quoted clipped, and so the errors stay short.
func TestErrorsAreShort(t *testing.T) {
	long := strings.Repeat("x", 4000)
	for _, es := range [][]entry{
		{file(long, "x"), file(long+"/y", "x")},
		{symlink("l", "/"+long)},
		{file(strings.Repeat("y", 5000), "x")},
		{file(".beam-driver"+long, "x")},
	} {
		err := Reader(bytes.NewReader(archive(t, true, es...)), t.TempDir(), Limits{})
		if err == nil || len(err.Error()) > 600 {
			t.Errorf("error of %d bytes: %.600v", len(fmt.Sprint(err)), err)
		}
	}
	if got := clip("ab€cd€€€€ef", 7); got != "ab…€ef" {
		t.Errorf("clip = %q", got)
	}
}

// BenchmarkBombs unpacks the archives that made the link check quadratic:
// the review's 2,047-deep chain with 20 links into it (72 s before the
// depth cap), and 500 links into a chain at the depth limit (refused by the
// link budget).
func BenchmarkBombs(b *testing.B) {
	for name, es := range map[string][]entry{
		"2047-deep chain and 20 links": linksInto(2047, 20),
		"500 links at the depth limit": linksInto(127, 500),
	} {
		b.Run(name, func(b *testing.B) {
			data := archive(b, true, es...)
			for b.Loop() {
				_ = Reader(bytes.NewReader(data), b.TempDir(), Limits{MaxEntries: 1000})
			}
		})
	}
}

// TestReaderChargesHardLinks: a hard link costs its target's size, as the
// task's copy of the tree and the cache's accounting count it. The bomb of
// the review, one file and many links to it, is refused; a release with a
// few links under the limit still unpacks.
func TestReaderChargesHardLinks(t *testing.T) {
	big := strings.Repeat("x", 64<<10)
	bomb := []entry{file("big", big)}
	for i := range 300 {
		bomb = append(bomb, hardlink(fmt.Sprintf("l%d", i), "big"))
	}
	refused(t, Limits{MaxBytes: 1 << 20}, "counting each hard link as a copy", bomb...)

	ok := []entry{file("big", big), hardlink("l1", "big"), hardlink("l2", "big")}
	dst := t.TempDir()
	if err := Reader(bytes.NewReader(archive(t, true, ok...)), dst, Limits{MaxBytes: 3 * 64 << 10}); err != nil {
		t.Fatalf("three names of 64 KiB under a 192 KiB limit: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "l2")); err != nil || fi.Size() != 64<<10 {
		t.Errorf("l2: %v", err)
	}
	// One byte less and the third name does not fit.
	refused(t, Limits{MaxBytes: 3*64<<10 - 1}, "counting each hard link as a copy", ok...)
}
