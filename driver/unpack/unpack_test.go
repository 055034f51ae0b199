package unpack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// entry is one tar entry for a test archive.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
	size             int64 // overrides len(body) in the header when set
}

func file(name, body string) entry { return entry{name: name, body: body, typ: tar.TypeReg} }

func symlink(name, target string) entry { return entry{name: name, link: target, typ: tar.TypeSymlink} }

// archive builds a tar, gzip-compressed when gz is set.
func archive(t testing.TB, gz bool, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	var zw *gzip.Writer
	var tw *tar.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		tw = tar.NewWriter(zw)
	} else {
		tw = tar.NewWriter(&buf)
	}
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		size := int64(len(e.body))
		if e.size != 0 {
			size = e.size
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: mode, Linkname: e.link}
		if e.typ == tar.TypeReg {
			hdr.Size = size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg && e.body != "" {
			_, _ = tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil && !strings.Contains(err.Error(), "missed writing") {
		t.Fatal(err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestReaderUnpacksRelease(t *testing.T) {
	dst := t.TempDir()
	data := archive(t, true,
		entry{name: "app/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "app/bin/app", body: "#!/bin/sh\n", typ: tar.TypeReg, mode: 0o755},
		file("app/releases/start_erl.data", "13.1.5 0.1.0\n"),
		symlink("app/bin/current", "app"),
		entry{name: "app/bin/hard", link: "app/bin/app", typ: tar.TypeLink},
	)
	if err := Reader(bytes.NewReader(data), dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dst, "app/bin/app"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("bin/app lost its executable bit: %v", fi.Mode())
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "app/bin/current")); string(b) != "#!/bin/sh\n" {
		t.Errorf("symlink inside the release does not resolve: %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "app/bin/hard")); string(b) != "#!/bin/sh\n" {
		t.Errorf("hard link has %q", b)
	}
}

func TestReaderAcceptsPlainTar(t *testing.T) {
	dst := t.TempDir()
	if err := Reader(bytes.NewReader(archive(t, false, file("a/b", "x"))), dst, Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "a/b")); err != nil {
		t.Fatal(err)
	}
}

// TestReaderRejects covers archives that must never be unpacked. Each must
// fail with an error that names the problem, and write nothing outside dst.
func TestReaderRejects(t *testing.T) {
	good := archive(t, true, file("bin/app", strings.Repeat("x", 4096)), file("releases/start_erl.data", "1 2"))

	cases := []struct {
		name string
		data []byte
		lim  Limits
		want string
	}{
		{"absolute path", archive(t, true, file("/tmp/evil", "x")), Limits{}, "absolute path"},
		{"dot-dot", archive(t, true, file("../evil", "x")), Limits{}, `".."`},
		{"dot-dot inside", archive(t, true, file("bin/../../evil", "x")), Limits{}, `".."`},
		{"absolute symlink", archive(t, true, symlink("bin/x", "/etc")), Limits{}, "absolute path"},
		{"relative symlink out", archive(t, true, symlink("bin/x", "../../etc")), Limits{}, "outside the target"},
		{"symlink chain out", archive(t, true,
			entry{name: "d/", typ: tar.TypeDir},
			symlink("d/up", ".."),
			symlink("esc", "d/up/.."),
		), Limits{}, "outside the target"},
		{"dangling symlink chain out", archive(t, true,
			entry{name: "d/", typ: tar.TypeDir},
			symlink("d/up", ".."),
			symlink("esc", "d/up/../not-there-yet"),
		), Limits{}, "outside the target"},
		{"write through symlink", archive(t, true, symlink("d", "."), file("d/../../evil", "x")), Limits{}, `".."`},
		{"hard link out", archive(t, true, entry{name: "h", link: "../etc/passwd", typ: tar.TypeLink}), Limits{}, `".."`},
		{"device file", archive(t, true, entry{name: "dev", typ: tar.TypeChar}), Limits{}, "unsupported entry type"},
		{"fifo", archive(t, true, entry{name: "fifo", typ: tar.TypeFifo}), Limits{}, "unsupported entry type"},
		{"truncated gzip", good[:len(good)/2], Limits{}, "truncated"},
		{"truncated tar", archive(t, false, entry{name: "big", body: "abc", typ: tar.TypeReg, size: 10000}), Limits{}, "truncated"},
		{"corrupt gzip", corrupt(good), Limits{}, "corrupt"},
		{"not a tarball", []byte(strings.Repeat("this is not a tar file\n", 100)), Limits{}, "corrupt"},
		{"empty", nil, Limits{}, "empty"},
		{"too big", good, Limits{MaxBytes: 1000}, "exceed 1000 bytes"},
		{"too many entries", good, Limits{MaxEntries: 1}, "more than 1 entries"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "dst")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			err := Reader(bytes.NewReader(tc.data), dst, tc.lim)
			if err == nil {
				t.Fatal("unpacked, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			var ue *Error
			if !errors.As(err, &ue) {
				t.Errorf("error %T is not an *unpack.Error", err)
			}
			if names, _ := os.ReadDir(parent); len(names) != 1 {
				t.Errorf("something was written next to dst: %v", names)
			}
		})
	}
}

// corrupt flips a byte in the middle of the compressed stream.
func corrupt(b []byte) []byte {
	c := bytes.Clone(b)
	c[len(c)/2] ^= 0xff
	return c
}

func FuzzReader(f *testing.F) {
	f.Add(archive(f, true, file("bin/app", "x"), symlink("l", "bin/app")))
	f.Add(archive(f, false, file("a/b/c", "hello")))
	f.Add(archive(f, true, symlink("d", "."), file("d/x", "x")))
	// Every escape class, plain so that the fuzzer can mutate the headers.
	for _, a := range attacks {
		f.Add(archive(f, false, a.entries...))
	}
	// The link bomb of the review, 2,047 deep, and its shape at the limit.
	f.Add(archive(f, true, linksInto(2047, 20)...))
	f.Add(archive(f, false, linksInto(127, 3)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		victim := filepath.Join(parent, "victim")
		if err := os.WriteFile(victim, []byte(victimContent), 0o644); err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(parent, "dst")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			done <- Reader(bytes.NewReader(data), dst, Limits{MaxBytes: 1 << 20, MaxEntries: 1000})
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<16)
			t.Fatalf("Reader hangs:\n%s", buf[:runtime.Stack(buf, true)])
		}
		// Whatever the archive, nothing may appear next to dst, the file
		// beside it is untouched and never quoted, and no link inside dst
		// may lead out of it.
		if names, _ := os.ReadDir(parent); len(names) != 2 {
			t.Fatalf("entries escaped dst: %v", names)
		}
		if b, _ := os.ReadFile(victim); string(b) != victimContent {
			t.Fatalf("the file beside dst changed: %q", b)
		}
		if err != nil && strings.Contains(err.Error(), strings.TrimSpace(victimContent)) {
			t.Fatalf("error quotes a host file: %v", err)
		}
		if err == nil {
			if cerr := CheckTree(dst); cerr != nil {
				t.Fatalf("unpacked a tree that fails the check: %v", cerr)
			}
		}
		_ = filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.Type()&os.ModeSymlink == 0 {
				return nil
			}
			r, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil
			}
			base, _ := filepath.EvalSymlinks(dst)
			if rel, _ := filepath.Rel(base, r); strings.HasPrefix(rel, "..") {
				t.Fatalf("symlink %s resolves outside dst to %s", p, r)
			}
			return nil
		})
	})
}
