package unpack

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func hardlink(name, target string) entry { return entry{name: name, link: target, typ: tar.TypeLink} }

func dir(name string) entry { return entry{name: name, typ: tar.TypeDir, mode: 0o755} }

// victimContent is the content of a host file beside the target, which no
// archive may reach or quote.
const victimContent = "victim: host secret 8c1f\n"

// attack is a hostile archive, unpacked into parent/root beside
// parent/victim, and the exact refusal it must meet.
type attack struct {
	name    string
	entries []entry
	entry   string // the entry the error must name
	reason  string // a part of the reason
}

var attacks = []attack{
	{
		// a/s -> ../victim stays inside read from a/; the hard link h is
		// the same symlink inode, and at the root it reaches the victim.
		name:    "hard link to a symlink",
		entries: []entry{dir("a/"), symlink("a/s", "../victim"), hardlink("h", "a/s")},
		entry:   "h", reason: `hard link to "a/s", which is not a regular file written earlier`,
	},
	{
		name: "hard link to a symlink, named like a release file",
		entries: []entry{dir("releases/"), symlink("releases/s", "../victim"),
			hardlink("releases/start_erl.data", "releases/s")},
		entry: "releases/start_erl.data", reason: "not a regular file written earlier",
	},
	{
		// a/b/d -> ../.. is the root; a/b/d/s -> ../victim reads as
		// a/b/victim by name, but is created at the root as s; then a/b/d
		// leads to a real directory so that a check by name finds nothing.
		name: "symlink written through a symlink replaced later",
		entries: []entry{dir("a/b/e/"), symlink("a/b/d", "../.."), symlink("a/b/d/s", "../victim"),
			symlink("a/b/d", "e")},
		entry: "a/b/d/s", reason: `path "a/b/d" is a symlink`,
	},
	{
		name: "symlink written through a symlink replaced by a file",
		entries: []entry{dir("a/b/"), symlink("a/b/d", "../.."), symlink("a/b/d/s", "../victim"),
			file("a/b/d", "x")},
		entry: "a/b/d/s", reason: `path "a/b/d" is a symlink`,
	},
	{
		name:    "file written through a symlinked directory",
		entries: []entry{symlink("d", "."), file("d/x", "x")},
		entry:   "d/x", reason: `path "d" is a symlink`,
	},
	{
		name:    "directory entry over a symlink",
		entries: []entry{dir("a/"), symlink("a/d", "."), dir("a/d/")},
		entry:   "a/d/", reason: `path "a/d" is a symlink`,
	},
	{
		name:    "hard link to a name never written",
		entries: []entry{file("f", "x"), hardlink("h", "nothere")},
		entry:   "h", reason: `hard link to "nothere", which is not a regular file written earlier`,
	},
	{
		name:    "hard link to a directory",
		entries: []entry{dir("d/"), file("d/f", "x"), hardlink("h", "d")},
		entry:   "h", reason: `hard link to "d", which is not a regular file written earlier`,
	},
	{
		name:    "hard link to the target itself",
		entries: []entry{file("f", "x"), hardlink("h", ".")},
		entry:   "h", reason: `hard link to ".", which is not a regular file written earlier`,
	},
	{
		name:    "hard link to a file later replaced by a symlink",
		entries: []entry{file("f", "x"), dir("a/"), symlink("a/s", "../victim"), symlink("f", "a/s"), hardlink("h", "f")},
		entry:   "h", reason: `hard link to "f", which is not a regular file written earlier`,
	},
	{
		name:    "hard link to itself",
		entries: []entry{hardlink("h", "h")},
		entry:   "h", reason: "not a regular file written earlier",
	},
	{
		name:    "marker-named file",
		entries: []entry{file("bin/app", "x"), file(".beam-driver-complete", "")},
		entry:   ".beam-driver-complete", reason: "reserved for the driver",
	},
	{
		name:    "marker-named hard link",
		entries: []entry{file("bin/app", "x"), hardlink(".beam-driver-complete", "bin/app")},
		entry:   ".beam-driver-complete", reason: "reserved for the driver",
	},
	{
		name:    "marker-named symlink",
		entries: []entry{symlink(".beam-driver-complete", "bin")},
		entry:   ".beam-driver-complete", reason: "reserved for the driver",
	},
	{
		name:    "reserved directory component",
		entries: []entry{file("lib/.beam-driver.tmp/x", "x")},
		entry:   "lib/.beam-driver.tmp/x", reason: `".beam-driver.tmp" is reserved`,
	},
	{
		// Each link stays inside by name; together they reach the victim.
		name:    "symlink chain",
		entries: []entry{dir("a/"), symlink("a/up", ".."), dir("b/"), symlink("b/c", "../a/up/../victim")},
		entry:   "b/c", reason: `symlink to "../a/up/../victim" resolves outside`,
	},
	{
		name: "symlink chain through several links",
		entries: []entry{dir("a/b/"), symlink("a/b/up", ".."), symlink("a/up2", "b/up/.."),
			symlink("x", "a/up2/../victim")},
		entry: "x", reason: "resolves outside",
	},
	{
		name:    "dangling symlink chain",
		entries: []entry{dir("a/"), symlink("a/up", ".."), symlink("x", "a/up/missing/../../victim")},
		entry:   "x", reason: "resolves outside",
	},
	{
		name:    "symlink loop",
		entries: []entry{symlink("l1", "l2"), symlink("l2", "l1")},
		entry:   "l1", reason: "loop",
	},
	{
		name:    "absolute symlink",
		entries: []entry{symlink("x", filepath.Join(os.TempDir(), "victim"))},
		entry:   "x", reason: "absolute path",
	},
}

// unpackBeside unpacks entries into parent/root beside parent/victim, and
// checks that the victim is untouched and nothing else appeared beside it.
func unpackBeside(t *testing.T, entries ...entry) error {
	t.Helper()
	parent := t.TempDir()
	victim := filepath.Join(parent, "victim")
	if err := os.WriteFile(victim, []byte(victimContent), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(parent, "root")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	err := Reader(bytes.NewReader(archive(t, true, entries...)), dst, Limits{})
	if b, rerr := os.ReadFile(victim); rerr != nil || string(b) != victimContent {
		t.Errorf("victim changed: %q, %v", b, rerr)
	}
	if names, _ := os.ReadDir(parent); len(names) != 2 {
		t.Errorf("something was written beside the target: %v", names)
	}
	if err != nil && strings.Contains(err.Error(), strings.TrimSpace(victimContent)) {
		t.Errorf("error quotes the victim: %v", err)
	}
	if left, _ := os.ReadDir(dst); err != nil && len(left) != 0 {
		t.Errorf("a rejected archive left %v behind", left)
	}
	return err
}

func TestReaderRefusesAttacks(t *testing.T) {
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			err := unpackBeside(t, a.entries...)
			var ue *Error
			if !errors.As(err, &ue) {
				t.Fatalf("error %v (%T), want an *unpack.Error", err, err)
			}
			if ue.Entry != a.entry || !strings.Contains(ue.Reason, a.reason) {
				t.Fatalf("refused with %q, want entry %q and a reason with %q", err, a.entry, a.reason)
			}
		})
	}
}

// TestReaderUnpacksReleaseShapes covers what mix and relx build: internal
// symlinks that climb with "..", links to directories, dangling links that
// stay inside, hard links to regular files, "./" prefixes, a directory
// entry after its contents, and a file replaced by a later entry.
func TestReaderUnpacksReleaseShapes(t *testing.T) {
	err := unpackBeside(t,
		dir("./"),
		file("./app/erts-14.2/bin/beam.smp", "elf"),
		file("./app/lib/x-1.0/ebin/x.beam", "beam"),
		file("./app/lib/x-1.0/priv/x.so", "so"),
		symlink("./app/bin/erts", "../erts-14.2/bin"),
		symlink("./app/lib/x-1.0/priv/current", "../../../erts-14.2/bin/beam.smp"),
		symlink("./app/priv", "lib/x-1.0/priv"),
		symlink("./app/dangling", "lib/not-yet/../x-1.0"),
		hardlink("./app/erts-14.2/bin/erlexec", "app/erts-14.2/bin/beam.smp"),
		hardlink("app/erts-14.2/bin/erl", "./app/erts-14.2/bin/erlexec"),
		dir("./app/lib/x-1.0/"),
		file("app/releases/start_erl.data", "old"),
		file("app/releases/start_erl.data", "14.2 1.0\n"),
		hardlink("app/releases/start_erl.copy", "app/releases/start_erl.data"),
	)
	if err != nil {
		t.Fatal(err)
	}
}

func TestCheckTree(t *testing.T) {
	cases := []struct {
		name  string
		links map[string]string // name -> target, below a/ and b/
		bad   string
	}{
		{"inside", map[string]string{"a/l": "../b", "b/m": "../a/l/../x"}, ""},
		{"hard-linked symlink at the root", map[string]string{"h": "../victim"}, "h"},
		{"deep climb", map[string]string{"a/l": "../../victim"}, "a/l"},
		{"chain", map[string]string{"a/up": "..", "z": "a/up/../victim"}, "z"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "root")
			for _, d := range []string{"a", "b"} {
				if err := os.MkdirAll(filepath.Join(dst, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for name, target := range tc.links {
				if err := os.Symlink(target, filepath.Join(dst, name)); err != nil {
					t.Fatal(err)
				}
			}
			err := CheckTree(dst)
			var ue *Error
			switch {
			case tc.bad == "" && err != nil:
				t.Fatal(err)
			case tc.bad != "" && (!errors.As(err, &ue) || ue.Entry != tc.bad):
				t.Fatalf("err = %v, want a refusal of %s", err, tc.bad)
			}
		})
	}
}
