//go:build unix

package fetch

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// secret stands for a root-only file on the client, such as a private
// key; it looks like a digest so that Checksum would accept it.
var secret = strings.Repeat("5e", 32)

// layout makes a file root holding app.tar.gz, and a victim file outside
// it. It returns the root and the victim's path.
func layout(t *testing.T) (root, victim string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "releases")
	victim = filepath.Join(base, "victim")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte(secret+"  app.tar.gz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "app.tar.gz"), []byte("tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, victim
}

// refused checks that err is a permanent refusal mentioning want and
// quoting nothing of the victim's content.
func refused(t *testing.T, what string, err error, want string) {
	t.Helper()
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: err = %v, want a permanent error mentioning %q", what, err, want)
	}
	if err != nil && strings.Contains(err.Error(), secret[:16]) {
		t.Errorf("%s: the error quotes the victim's content: %v", what, err)
	}
}

func TestFileSourcesOffWithoutRoots(t *testing.T) {
	_, victim := layout(t)
	f := New(Config{})
	for _, src := range []string{victim, "file://" + victim} {
		_, err := f.Download(context.Background(), src, filepath.Join(t.TempDir(), "out"), nil)
		refused(t, src, err, "file sources are off: the plugin config sets no file_roots")
	}
	_, err := f.Checksum(context.Background(), "file://"+victim)
	refused(t, "Checksum", err, "file_roots")
}

func TestFileSourceOutsideRootsRefused(t *testing.T) {
	root, victim := layout(t)
	sibling := root + "-evil" // shares the root's prefix, not its directory
	if err := os.Mkdir(sibling, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sibling, "app.tar.gz"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	f := New(Config{FileRoots: []string{root}})
	cases := map[string]string{
		victim:                                    "is not under any of file_roots (" + root + ")",
		"file://" + victim:                        "is not under any of file_roots",
		filepath.Join(sibling, "app.tar.gz"):      "is not under any of file_roots",
		root + "/../victim":                       `must not contain ".."`,
		"file://" + root + "/%2e%2e/victim":       `must not contain ".."`,
		"file://otherhost" + root + "/app.tar.gz": "must be an absolute path",
		root: "is not under any of file_roots",
	}
	for src, want := range cases {
		dst := filepath.Join(t.TempDir(), "out")
		_, err := f.Download(context.Background(), src, dst, nil)
		refused(t, src, err, want)
		if b, _ := os.ReadFile(dst); len(b) != 0 {
			t.Errorf("%s: wrote %q", src, b)
		}
	}
}

func TestFileSourceSymlinkEscapeRefused(t *testing.T) {
	root, victim := layout(t)
	links := map[string]string{
		"abs.tar.gz": victim,
		"rel.tar.gz": "../victim",
		// The checksum sidecar of a real tarball, pointing out.
		"app.tar.gz.sha256": victim,
		// A directory inside the root that leads out of it.
		"sub": filepath.Dir(victim),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	f := New(Config{FileRoots: []string{root}, RetryWindow: 5 * time.Second})
	f.OnRetry = func(int, error, time.Duration) { t.Error("an escaping symlink was retried") }
	for _, name := range []string{"abs.tar.gz", "rel.tar.gz", "sub/victim"} {
		src := filepath.Join(root, name)
		dst := filepath.Join(t.TempDir(), "out")
		_, err := f.Download(context.Background(), src, dst, nil)
		refused(t, name, err, "symbolic links must not lead out of file_roots")
		if b, _ := os.ReadFile(dst); len(b) != 0 {
			t.Errorf("%s: wrote %q", name, b)
		}
	}
	sum, err := f.Checksum(context.Background(), "file://"+filepath.Join(root, "app.tar.gz"))
	refused(t, "Checksum", err, "symbolic links must not lead out of file_roots")
	if sum != "" {
		t.Errorf("Checksum returned %q through a symlink", sum)
	}
}

func TestFileSourceInsideRootDownloads(t *testing.T) {
	root, _ := layout(t)
	if err := os.Mkdir(filepath.Join(root, "v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "v2", "app.tar.gz"), []byte("tarball v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A symlink that stays inside the root is fine.
	if err := os.Symlink("v2/app.tar.gz", filepath.Join(root, "current.tar.gz")); err != nil {
		t.Fatal(err)
	}
	f := New(Config{FileRoots: []string{t.TempDir(), root + "/"}})
	cases := map[string]string{
		filepath.Join(root, "app.tar.gz"):                "tarball",
		"file://" + filepath.Join(root, "v2/app.tar.gz"): "tarball v2",
		filepath.Join(root, "current.tar.gz"):            "tarball v2",
	}
	for src, want := range cases {
		dst := filepath.Join(t.TempDir(), "out")
		n, err := f.Download(context.Background(), src, dst, nil)
		b, _ := os.ReadFile(dst)
		if err != nil || n != int64(len(want)) || string(b) != want {
			t.Errorf("%s: n=%d err=%v content=%q; want %q", src, n, err, b, want)
		}
	}
}

func TestFileSourceFIFORefused(t *testing.T) {
	root, _ := layout(t)
	fifo := filepath.Join(root, "pipe.tar.gz")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := New(Config{FileRoots: []string{root}}).Download(context.Background(), fifo, filepath.Join(t.TempDir(), "out"), nil)
		done <- err
	}()
	select {
	case err := <-done:
		refused(t, "fifo", err, "is not a regular file")
	case <-time.After(5 * time.Second):
		t.Fatal("opening a FIFO blocked")
	}
}
