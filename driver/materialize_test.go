package driver

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestShared(t *testing.T) {
	cases := map[string]bool{
		"lib/kernel-8.5/ebin/kernel.beam":         true,
		"shop/lib/shop-1.0/priv/static/app.js":    true,
		"erts-13.1.5/bin/beam.smp":                true,
		"shop/erts-13.1.5/bin/erl_call":           true,
		"erlang-shipment/hello/ebin/hello.beam":   true,
		"bin/shop":                                false,
		"shop/bin/shop-1.0":                       false,
		"releases/RELEASES":                       false,
		"releases/1.0/vm.args":                    false,
		"releases/1.0/consolidated/Elixir.X.beam": false,
		"erlang-shipment/entrypoint.sh":           false,
		"start_erl.data":                          false,
	}
	for rel, want := range cases {
		if got := shared(rel); got != want {
			t.Errorf("shared(%q) = %v, want %v", rel, got, want)
		}
	}
}

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
	links := func(name string) uint64 {
		fi, err := os.Stat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		return uint64(fi.Sys().(*syscall.Stat_t).Nlink)
	}
	if links("lib/app-1.0/ebin/app.beam") != 2 {
		t.Error("lib/ is not hard-linked")
	}
	if links("bin/app") != 1 || links("releases/RELEASES") != 1 {
		t.Error("bin/ and releases/ must be copies, which a node may rewrite")
	}
	// Writing the task's copy leaves the cache's alone.
	if err := os.WriteFile(filepath.Join(dst, "releases/RELEASES"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(tree, "releases/RELEASES")); string(b) != "[]" {
		t.Errorf("the cached tree changed: %q", b)
	}
	if target, _ := os.Readlink(filepath.Join(dst, "bin/current")); target != "app" {
		t.Errorf("symlink not kept: %q", target)
	}
}
