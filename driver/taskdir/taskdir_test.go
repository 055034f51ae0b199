package taskdir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const secret = "victim-content-4f1c"

// setup returns a task directory and a victim file beside it, outside.
func setup(t *testing.T) (*Dir, string, string) {
	t.Helper()
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	task := filepath.Join(base, "task")
	for _, d := range []string{"local", "secrets"} {
		if err := os.MkdirAll(filepath.Join(task, d), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Open(task)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, task, victim
}

func unchanged(t *testing.T, victim string) {
	t.Helper()
	b, err := os.ReadFile(victim)
	if err != nil || string(b) != secret {
		t.Fatalf("victim file changed: %q, %v", b, err)
	}
}

func noSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Fatalf("error quotes the victim: %v", err)
	}
}

func TestWriteFileReplacesPlantedSymlink(t *testing.T) {
	d, task, victim := setup(t)
	if err := os.Symlink(victim, filepath.Join(task, "secrets", "vm.args")); err != nil {
		t.Fatal(err)
	}
	r, err := d.root.OpenRoot("secrets")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := WriteFile(r, "vm.args", []byte("-name x"), 0o600, Root); err != nil {
		t.Fatal(err)
	}
	unchanged(t, victim)
	fi, err := os.Lstat(filepath.Join(task, "secrets", "vm.args"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("vm.args is not a fresh regular file: %v %v", fi, err)
	}
}

func TestWriteFileReplacesPlantedHardLink(t *testing.T) {
	d, task, victim := setup(t)
	if err := os.Link(victim, filepath.Join(task, "secrets", "hot.json")); err != nil {
		t.Fatal(err)
	}
	r, _ := d.root.OpenRoot("secrets")
	defer r.Close()
	if err := WriteFile(r, "hot.json", []byte("{}"), 0o600, Root); err != nil {
		t.Fatal(err)
	}
	unchanged(t, victim)
}

func TestFreshDoesNotFollowPlantedDirLink(t *testing.T) {
	d, task, victim := setup(t)
	outside := filepath.Dir(victim)
	if err := os.Symlink(outside, filepath.Join(task, "secrets", "beam")); err != nil {
		t.Fatal(err)
	}
	r, err := d.Fresh("secrets/beam", 0o700)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := WriteFile(r, "victim", []byte("overwritten"), 0o600, Root); err != nil {
		t.Fatal(err)
	}
	unchanged(t, victim)
	if fi, err := os.Lstat(filepath.Join(task, "secrets", "beam")); err != nil || !fi.IsDir() {
		t.Fatalf("secrets/beam is not a fresh directory: %v", err)
	}
}

func TestFreshThroughPlantedParentLink(t *testing.T) {
	d, task, victim := setup(t)
	// secrets itself replaced by a link out of the task directory.
	if err := os.RemoveAll(filepath.Join(task, "secrets")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(victim), filepath.Join(task, "secrets")); err != nil {
		t.Fatal(err)
	}
	_, err := d.Fresh("secrets/beam", 0o700)
	if err == nil {
		t.Fatal("Fresh went through a link out of the task directory")
	}
	noSecret(t, err)
	if _, serr := os.Lstat(filepath.Join(filepath.Dir(victim), "beam")); serr == nil {
		t.Fatal("a directory was created outside the task directory")
	}
}

func TestReadFileRefusesLinkOut(t *testing.T) {
	d, task, victim := setup(t)
	if err := os.Symlink(victim, filepath.Join(task, "secrets", "nomad_token")); err != nil {
		t.Fatal(err)
	}
	b, err := d.ReadFile("secrets/nomad_token", 1024)
	if err == nil || len(b) > 0 {
		t.Fatalf("read through a link out: %q", b)
	}
	noSecret(t, err)
}

func TestReadFileCapsSize(t *testing.T) {
	d, task, _ := setup(t)
	if err := os.WriteFile(filepath.Join(task, "secrets", "big"), make([]byte, 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadFile("secrets/big", 1024); err == nil {
		t.Fatal("a file over the limit was read")
	}
	if b, err := d.ReadFile("secrets/big", 4096); err != nil || len(b) != 2048 {
		t.Fatalf("read %d bytes, %v", len(b), err)
	}
}

func TestCopyMergeKeepsPlantedLinks(t *testing.T) {
	d, task, victim := setup(t)
	src := t.TempDir()
	for name, body := range map[string]string{"lib/app-2/ebin/app.beam": "new", "releases/2/app.rel": "rel", "bin/app": "#!/bin/sh"} {
		p := filepath.Join(src, name)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("app", filepath.Join(src, "bin", "current")); err != nil {
		t.Fatal(err)
	}
	rel, err := d.Fresh("local/release", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer rel.Close()
	// The task plants a link where the merge will put a directory, and
	// one where it would write a file.
	outside := filepath.Dir(victim)
	if err := os.Symlink(outside, filepath.Join(task, "local", "release", "lib")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(task, "local", "release", "bin"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(task, "local", "release", "bin", "app")); err != nil {
		t.Fatal(err)
	}
	created, err := Copy(src, rel, Root, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	unchanged(t, victim)
	if _, err := os.Stat(filepath.Join(outside, "app-2")); err == nil {
		t.Fatal("the merge wrote through a planted directory link")
	}
	want := map[string]bool{"releases": true, "bin/current": true}
	for _, c := range created {
		if !want[c] {
			t.Errorf("unexpected created path %q", c)
		}
		delete(want, c)
	}
	if len(want) > 0 {
		t.Errorf("not created: %v (created %v)", want, created)
	}
	if b, _ := os.ReadFile(filepath.Join(task, "local", "release", "releases", "2", "app.rel")); string(b) != "rel" {
		t.Errorf("merged file content %q", b)
	}
}

func TestCopyIntoFreshTree(t *testing.T) {
	d, task, _ := setup(t)
	src := t.TempDir()
	p := filepath.Join(src, "releases", "1", "vm.args")
	_ = os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte("-x"), 0o640); err != nil {
		t.Fatal(err)
	}
	rel, err := d.Fresh("local/release", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer rel.Close()
	if _, err := Copy(src, rel, Root, false, nil); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(task, "local", "release", "releases", "1", "vm.args"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("copied file: %v, %v", fi, err)
	}
	// Writing the copy leaves the source alone.
	if err := os.WriteFile(filepath.Join(task, "local", "release", "releases", "1", "vm.args"), []byte("changed"), 0o640); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "-x" {
		t.Fatal("the copy shares the source's file")
	}
}
