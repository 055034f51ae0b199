//go:build e2e

package e2e

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The hostile-release suite: releases, tasks and local processes that try
// to make the driver (root on the client) write, read or dial what it must
// not. Each case ends with a task event that says what happened, and
// checks that a host file outside every Nomad directory, the victim, is
// unchanged and quoted nowhere. Helpers are in hostile_helpers_test.go.

// TestHostileLinkEscape serves tarballs whose links reach the victim only
// once combined, and checks that the unpacker refuses each one, naming the
// entry.
func TestHostileLinkEscape(t *testing.T) {
	// Deep enough that climbing from it reaches / from the cache, where
	// trees are built (data_dir/cache/ns/default/SUM.d.*.part).
	deep := "a/b/c/d/e/f/g/h/i/j/k/l"
	depth := strings.Count(deep, "/") + 1
	var deepDirs []tarEntry
	for i := range deep {
		if deep[i] == '/' {
			deepDirs = append(deepDirs, tdir(deep[:i]))
		}
	}
	deepDirs = append(deepDirs, tdir(deep))
	up := strings.Repeat("../", depth)

	cases := []struct {
		name    string
		attack  func(v *victim) []tarEntry
		entry   string // the entry the event must name
		reason  string // the refusal's reason, exactly
		noStart bool   // leave releases/start_erl.data to the attack
	}{
		{
			// deep/s climbs to the root by name, then down to the victim:
			// inside where it stands. The hard link h is the same symlink
			// inode at the root, where it reaches / and the victim.
			name: "hard link to a symlink",
			attack: func(v *victim) []tarEntry {
				return append(deepDirs, tsymlink(deep+"/s", up+v.rel()), thardlink("h", deep+"/s"))
			},
			entry:  "h",
			reason: fmt.Sprintf("hard link to %q, which is not a regular file written earlier in this archive", deep+"/s"),
		},
		{
			// x/d -> the root; x/d/s is written through it, at the root,
			// where its target climbs to /; then x/d becomes a real
			// directory, so that a check by name finds x/d/s harmless.
			name: "symlink written through a symlink, then replaced by a directory",
			attack: func(v *victim) []tarEntry {
				d := deep + "/d"
				return append(deepDirs, tsymlink(d, up), tsymlink(d+"/s", up+"../"+v.rel()), tdir(d))
			},
			entry:  deep + "/d/s",
			reason: fmt.Sprintf("path %q is a symlink; a tarball never stores entries beneath a symlink", deep+"/d"),
		},
		{
			name: "hard link named like the cache's marker, to the victim",
			attack: func(v *victim) []tarEntry {
				return []tarEntry{thardlink(".beam-driver-complete", v.path)}
			},
			entry:  ".beam-driver-complete",
			reason: `name ".beam-driver-complete" is reserved for the driver's own files`,
		},
		{
			name: "hard link named like the cache's marker, to a file of the archive",
			attack: func(v *victim) []tarEntry {
				return []tarEntry{thardlink(".beam-driver-complete", "bin/hostile")}
			},
			entry:  ".beam-driver-complete",
			reason: `name ".beam-driver-complete" is reserved for the driver's own files`,
		},
		{
			name: "hard link to the victim's absolute path",
			attack: func(v *victim) []tarEntry {
				return []tarEntry{thardlink("releases/0.1.0/sys.config", v.path)}
			},
			entry:  "releases/0.1.0/sys.config",
			reason: "hard link target is an absolute path; build the tarball with paths relative to the release root",
		},
		{
			// releases/start_erl.data -> ../x -> deep/up/../../..: each
			// link stays inside by name, deep/up is the root, so x climbs
			// above it to / and the victim.
			name:    "releases/start_erl.data through a chain of links",
			noStart: true,
			attack: func(v *victim) []tarEntry {
				return append(deepDirs, tsymlink(deep+"/up", strings.TrimSuffix(up, "/")),
					tsymlink("x", deep+"/up/"+up+v.rel()), tsymlink("releases/start_erl.data", "../x"))
			},
			entry:  "releases/start_erl.data",
			reason: `symlink to "../x" resolves outside the target directory`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newVictim(t)
			srv := newHostileServer(t)
			entries := append(relxTree("hostile", "#!/bin/sh\nexit 1\n", !tc.noStart), tc.attack(v)...)
			body := tarGz(t, entries...)
			src := srv.add("links.tar.gz", body)
			j := submitHostile(t, "links", map[string]string{"task": "hostile", "source": src, "sha256": sha(body)})
			eventWith(t, j, fmt.Sprintf("Release %s refused: unpack: entry %q: %s", src, tc.entry, tc.reason))
			v.check(t)
			v.checkUnquoted(t, j)
		})
	}
}

// TestHostileTaskPlantsLinks runs a release as nobody that, once started,
// replaces what the driver writes in the task directory (secrets/beam's
// vm.args and home, local/release) with links to the victim and its
// directory, then exits so that Nomad restarts it: the driver must build
// the task's files anew, never writing or reading through the links.
func TestHostileTaskPlantsLinks(t *testing.T) {
	allowTraversal(t)
	v := newVictim(t)
	srv := newHostileServer(t)
	script := fmt.Sprintf(`#!/bin/sh
# Plants links where the driver writes, then fails.
V=%q
S="$NOMAD_SECRETS_DIR"
L="$NOMAD_TASK_DIR"
echo "hostile started as $(id -un)"
echo "id: $(id)"
if rm -f "$S/beam/vm.args" && ln -s "$V" "$S/beam/vm.args"; then echo "planted vm.args"; fi
if rm -rf "$S/beam/home" && ln -s "$(dirname "$V")" "$S/beam/home"; then echo "planted home"; fi
if mv "$L/release" "$L/release.moved.$$" && mkdir -p "$L/release/releases" &&
   ln -s "$V" "$L/release/releases/start_erl.data"; then echo "planted start_erl.data"; fi
exit 1
`, v.path)
	body := tarGz(t, relxTree("hostile", script, true)...)
	src := srv.add("plant.tar.gz", body)
	j := submitHostile(t, "plant", map[string]string{
		"task": "hostile", "source": src, "sha256": sha(body), "user": "nobody", "restarts": "1",
	})

	st := taskOf(t, j)
	if st.Restarts < 1 {
		t.Errorf("the task restarted %d times, want 1:\n%s", st.Restarts, j.describe(j.Alloc))
	}
	eventWith(t, j, "Restarting: the release is rebuilt from this node's verified copy")
	eventWith(t, j, "Started hostile 0.1.0 (relx release) as pid ")
	eventWith(t, j, "Exceeded allowed attempts 1")

	// The attack ran, on both starts.
	out, err := cluster.Nomad("alloc", "logs", j.Alloc, "node")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the release's identity: %s", logLine(out, "id: "))
	if n := strings.Count(out, "hostile started as nobody"); n < 2 {
		t.Errorf("the release started %d times as nobody, want 2; stdout:\n%s", n, out)
	}
	for _, what := range []string{"vm.args", "home", "start_erl.data"} {
		if n := strings.Count(out, "planted "+what); n < 2 {
			t.Errorf("the task planted its %s link %d times, want 2; stdout:\n%s", what, n, out)
		}
	}
	v.check(t)
	v.checkUnquoted(t, j)
}

// allowTraversal lets the task's user (nobody) reach its task directory:
// the cluster's scratch directory is made 0700 by os.MkdirTemp, and Nomad
// only makes its own alloc directory traversable, not the data_dir's
// parents. The group bit too: Nomad's executor gives the task's process
// the supplementary group 0 (see the "id:" line the release prints), so
// the group bits of root's directories apply to it, not the others bits.
func allowTraversal(t *testing.T) {
	t.Helper()
	for _, d := range []string{cluster.Dir, filepath.Join(cluster.Dir, "nomad")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o011 == 0o011 {
			continue
		}
		mode := fi.Mode().Perm()
		if err := os.Chmod(d, mode|0o011); err != nil {
			t.Fatal(err)
		}
		t.Logf("made %s traversable for the task's user (was %v)", d, mode)
		t.Cleanup(func() { _ = os.Chmod(d, mode) })
	}
}

// TestHostileGzipBomb serves small tarballs that unpack past the plugin's
// max_unpacked_mb (512 in the e2e config): one 600 MiB file of zeros, and
// the same in six files, so that the limit trips half-way through writing
// them. Neither may leave anything of its tree behind in data_dir.
func TestHostileGzipBomb(t *testing.T) {
	v := newVictim(t)
	srv := newHostileServer(t)
	cases := []struct {
		name  string
		files int
		entry string
	}{
		{"one 600 MiB file", 1, "bomb/zeros-0"},
		{"six 100 MiB files", 6, "bomb/zeros-5"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bomb.tar.gz")
			sum, size := writeBomb(t, path, tc.files, (600<<20)/int64(tc.files))
			if size >= 1<<20 {
				t.Fatalf("the bomb is %d bytes compressed, want under 1 MiB", size)
			}
			src := srv.addFile(fmt.Sprintf("bomb-%d.tar.gz", tc.files), path)
			j := submitHostile(t, "bomb", map[string]string{"task": "hostile", "source": src, "sha256": sum})
			eventWith(t, j, fmt.Sprintf("Release %s refused: unpack: entry %q: unpacked size would exceed %d bytes; "+
				"refusing a possible tar bomb (the plugin's max_unpacked_mb)", src, tc.entry, 512<<20))

			// Nothing of the tree is left: only the tarball, under 1 MiB,
			// is kept in the cache under its sha256.
			cache := filepath.Join(cluster.Dir, "beam", "cache")
			var left []string
			var total int64
			_ = filepath.WalkDir(cache, func(p string, d os.DirEntry, err error) error {
				if err != nil || !strings.HasPrefix(d.Name(), sum) {
					return nil
				}
				n := treeBytes(p)
				total += n
				left = append(left, fmt.Sprintf("%s (%d bytes)", strings.TrimPrefix(p, cache), n))
				if strings.HasPrefix(d.Name(), sum+".d") {
					t.Errorf("a tree of the bomb is left in the cache: %s, %d bytes", p, n)
				}
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			})
			if total >= 1<<20 {
				t.Errorf("data_dir keeps %d bytes for the bomb: %v", total, left)
			}
			t.Logf("kept for the bomb in data_dir/cache: %v", left)
			v.checkUnquoted(t, j)
		})
	}
	v.check(t)
}

// writeBomb writes a gzipped tarball of files files of size zero bytes
// each, streaming, and returns its sha256 and compressed size.
func writeBomb(t *testing.T, path string, files int, size int64) (string, int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	zw, _ := gzip.NewWriterLevel(io.MultiWriter(f, h), gzip.BestCompression)
	tw := tar.NewWriter(zw)
	zeros := make([]byte, 1<<20)
	for i := range files {
		err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("bomb/zeros-%d", i), Typeflag: tar.TypeReg,
			Mode: 0o644, Size: size, ModTime: time.Unix(1700000000, 0)})
		if err != nil {
			t.Fatal(err)
		}
		for left := size; left > 0; {
			n := min(left, int64(len(zeros)))
			if _, err := tw.Write(zeros[:n]); err != nil {
				t.Fatal(err)
			}
			left -= n
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), fi.Size()
}

// TestHostileCookieForms serves releases whose scripts put the cookie on a
// command line in shapes the driver cannot rewrite with certainty: each
// is refused, the event names the file and line, and quotes nothing of it.
func TestHostileCookieForms(t *testing.T) {
	mix := func(edits ...tarEntry) []tarEntry {
		base := relxTree("hostile", "#!/bin/sh\nexit 1\n", true)
		// releases/COOKIE makes it a mix release.
		base = append(base, tfile("releases/COOKIE", "BUILDTIMECOOKIE"))
		return append(base, edits...)
	}
	relx := func(edits ...tarEntry) []tarEntry {
		return append(relxTree("hostile", "#!/bin/sh\nexit 1\n", true), edits...)
	}
	cases := []struct {
		name    string
		entries []tarEntry
		where   string // FILE line N: what
		hidden  string // from the line, never quoted
	}{
		{
			name: "unquoted --cookie $RELEASE_COOKIE in bin/NAME",
			entries: mix(tscript("bin/hostile", "#!/bin/sh\nREL_VSN_DIR=\"$RELEASE_ROOT/releases/0.1.0\"\n"+
				"exec \"$REL_VSN_DIR/elixir\" --cookie $RELEASE_COOKIE --eval Unq8s3cretA\n")),
			where:  `bin/hostile line 3: a --cookie flag ("--cookie")`,
			hidden: "Unq8s3cretA",
		},
		{
			name: `--cookie="$X" in releases/VSN/env.sh`,
			entries: mix(tscript("releases/0.1.0/env.sh", "#!/bin/sh\nX=Env5s3cretB\n"+
				"exec \"$REL_VSN_DIR/elixir\" --cookie=\"$X\" --eval x\n")),
			where:  `releases/0.1.0/env.sh line 3: a --cookie flag ("--cookie")`,
			hidden: "Env5s3cretB",
		},
		{
			name: "-setcookie<TAB>\"$C\" in a relx hook",
			entries: relx(tdir("bin/hooks"), tscript("bin/hooks/pre_start", "#!/bin/sh\nC=Hk7s3cretC\n"+
				"\"$BINDIR/erl\" -setcookie\t\"$C\" -noshell\n")),
			where:  `bin/hooks/pre_start line 3: a -setcookie flag ("-setcookie")`,
			hidden: "Hk7s3cretC",
		},
		{
			name: `erl_call -c "$COOKIE" in a relx extension`,
			entries: relx(tdir("bin/extensions"), tscript("bin/extensions/foo", "#!/bin/sh\n"+
				"\"$ERTS_DIR/bin/erl_call\" -c \"$COOKIE\" -a 'Ext3s3cretD node'\n")),
			where:  `bin/extensions/foo line 2: a -c flag given to erl_call ("-c")`,
			hidden: "Ext3s3cretD",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			v := newVictim(t)
			srv := newHostileServer(t)
			body := tarGz(t, tc.entries...)
			src := srv.add("cookie.tar.gz", body)
			j := submitHostile(t, "cookie", map[string]string{"task": "hostile", "source": src, "sha256": sha(body)})
			e := eventWith(t, j, fmt.Sprintf("Release %s refused: %s that the driver cannot remove with certainty", src, tc.where),
				"distribution cookie", "through HOME/.erlang.cookie")
			if strings.Contains(e.DisplayMessage, tc.hidden) {
				t.Errorf("the event quotes the script's line: %s", e.DisplayMessage)
			}
			v.check(t)
			v.checkUnquoted(t, j)
		})
	}
}
