package driver

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMaterialize(t *testing.T) {
	tree, dst := t.TempDir(), filepath.Join(t.TempDir(), "release")
	files := map[string]string{
		"lib/app-1.0/ebin/app.beam": "beam",
		"bin/app":                   "#!/bin/sh",
		"releases/RELEASES":         "[]",
	}
	for name, body := range files {
		p := filepath.Join(tree, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("app", filepath.Join(tree, "bin", "current")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := materialize(tree, dst); err != nil {
		t.Fatal(err)
	}
	// Writing the task's copy in place leaves the cache's alone.
	for _, name := range []string{"releases/RELEASES", "lib/app-1.0/ebin/app.beam"} {
		f, err := os.OpenFile(filepath.Join(dst, name), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString("changed")
		f.Close()
		if b, _ := os.ReadFile(filepath.Join(tree, name)); string(b) == "changed" {
			t.Errorf("writing the task's %s changed the cached tree", name)
		}
	}
	if target, _ := os.Readlink(filepath.Join(dst, "bin/current")); target != "app" {
		t.Errorf("symlink not kept: %q", target)
	}
}
