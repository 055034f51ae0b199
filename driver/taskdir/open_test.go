package taskdir

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// The trap: os.Root follows a link that stays inside it even with
// O_NOFOLLOW. OpenFile, and so ReadFile, WriteFile and ChownDir, follow no
// link at all, in any component, on either code path (openat2, and the
// walk for kernels without it).
func TestOpenFileFollowsNoLink(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"secrets", "private", "local"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "private", "vault_token"), []byte("s.secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "ok"), []byte("cookie"), 0o600); err != nil {
		t.Fatal(err)
	}
	// secrets/erlang.cookie -> ../private/vault_token: inside the root.
	if err := os.Symlink("../private/vault_token", filepath.Join(dir, "secrets", "erlang.cookie")); err != nil {
		t.Fatal(err)
	}
	// local/s -> ../private: a directory link in the middle of a name.
	if err := os.Symlink("../private", filepath.Join(dir, "local", "s")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/proc/self/root/etc", filepath.Join(dir, "local", "abs")); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	// What os.Root does, and why it is not enough.
	if f, err := r.OpenFile("secrets/erlang.cookie", os.O_RDONLY|syscall.O_NOFOLLOW, 0); err == nil {
		f.Close()
		t.Log("os.Root followed the link (the trap this package avoids)")
	}

	dirf, err := r.Open(".")
	if err != nil {
		t.Fatal(err)
	}
	defer dirf.Close()
	for _, open := range []struct {
		name string
		fn   func(string, int) (*os.File, error)
	}{
		{"openat2", func(n string, fl int) (*os.File, error) { return OpenFile(r, n, fl, 0) }},
		{"walk", func(n string, fl int) (*os.File, error) { return walkOpen(dirf, n, fl, 0) }},
	} {
		for _, name := range []string{"secrets/erlang.cookie", "local/s/vault_token", "local/abs/passwd",
			"../x", "local/../../x"} {
			f, err := open.fn(name, os.O_RDONLY)
			if err == nil {
				f.Close()
				t.Errorf("%s: %s opened", open.name, name)
			}
		}
		f, err := open.fn("secrets/ok", os.O_RDONLY)
		if err != nil {
			t.Errorf("%s: a plain file: %v", open.name, err)
		} else {
			f.Close()
		}
	}
	if _, err := ReadFile(r, "secrets/erlang.cookie", 64); !errors.Is(err, ErrLink) {
		t.Errorf("ReadFile through a link: %v, want ErrLink", err)
	}
	before, _ := os.Stat(filepath.Join(dir, "private"))
	if err := ChownDir(r, "local/s", 0o700, Root); err == nil {
		t.Error("ChownDir through a link succeeded")
	}
	if err := WriteFile(r, "local/s/new", []byte("x"), 0o600, Root); err == nil {
		t.Error("WriteFile through a directory link succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "private", "new")); err == nil {
		t.Error("a file was written into private/")
	}
	if sub, err := OpenRoot(r, "local/s"); err == nil {
		sub.Close()
		t.Error("OpenRoot through a link succeeded")
	}
	if sub, err := OpenRoot(r, "local"); err != nil {
		t.Errorf("OpenRoot of a real directory: %v", err)
	} else {
		sub.Close()
	}
	if fi, _ := os.Stat(filepath.Join(dir, "private")); fi.Mode() != before.Mode() {
		t.Errorf("private/ mode changed to %v", fi.Mode().Perm())
	}
}
