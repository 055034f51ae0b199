package launch

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

// marker is in every file outside the tree: it must reach no file the
// driver writes, no error, and no field of a release.
const marker = "HOST-SECRET-7f3a"

// hostileNames are start_erl.data fields, release names and link targets
// that try to leave the tree.
var hostileNames = []string{
	"0.1.0", "..", ".", "../outside", "../../outside", "../../../outside", "a/../../outside",
	"/outside", "0.1.0/../../../outside", "x\nX", "-name", "0.1.0 ", "app", "..\\outside",
	"proc/self/cwd", "/proc/self/cwd/../outside",
}

// FuzzReleaseTreeStaysInside: for any start_erl.data, release name and
// links in a release tree, nothing the driver reads as root while finding,
// scrubbing and launching the release resolves outside the tree. A host
// directory beside the tree holds the marker in every file a release path
// could name; the marker must show up nowhere, and the host files must be
// left as they were.
func FuzzReleaseTreeStaysInside(f *testing.F) {
	for i, v := range hostileNames {
		for j, n := range []string{"app", "../outside/app", "..", v} {
			f.Add(hostileNames[(i+1)%len(hostileNames)]+" "+v, n, uint8(i*4+j), i%2 == 0)
		}
	}
	f.Fuzz(func(t *testing.T, startErl, name string, links uint8, mix bool) {
		top := t.TempDir()
		tree := filepath.Join(top, "tree")
		outside := filepath.Join(top, "outside")
		secret := []byte("-setcookie " + marker + "\n")
		for _, p := range []string{"vm.args", "vm.args.src", "remote.vm.args", "app.rel", "app", "start_erl.data",
			"0.1.0/vm.args", "0.1.0/app.rel", "bin/app", "x/vm.args"} {
			write(t, filepath.Join(outside, p), secret)
		}
		files := map[string]string{
			"releases/start_erl.data": startErl,
			"releases/0.1.0/app.rel":  `{release, {"app", "0.1.0"}, {erts, "14.2"}, []}.`,
			"releases/0.1.0/vm.args":  "-kernel x 1\n",
			"bin/app":                 "#!/bin/sh\necho start\n",
		}
		base := filepath.Base(name)
		if base == "." || base == ".." || base == "/" || strings.ContainsRune(name, 0) {
			base = "app"
		}
		files["bin/"+base] = "#!/bin/sh\necho start\n"
		if mix {
			files["releases/COOKIE"] = "BUILD"
		}
		for p, body := range files {
			write(t, filepath.Join(tree, p), []byte(body))
		}
		write(t, filepath.Join(tree, "releases", "0.1.0", base+".rel"), []byte("{}."))
		// Links out of the tree, by the bits of links: the unpacker
		// refuses them, and the readers must not depend on it.
		outs := []struct{ at, to string }{
			{"releases/0.1.0/vm.args", filepath.Join(outside, "vm.args")},
			{"releases/0.1.0/remote.vm.args", "../../../outside/remote.vm.args"},
			{"releases/0.1.0/vm.args.src", filepath.Join(outside, "vm.args.src")},
			{"releases/9.9.9", "../../outside/0.1.0"},
			{"releases/up", "../../outside"},
			{"bin/hooks", filepath.Join(outside, "bin")},
			{"releases/0.1.0/env.sh", "/proc/self/cwd/" + filepath.Join(outside, "app")},
			{"releases/start_erl.data", filepath.Join(outside, "start_erl.data")},
		}
		for i, l := range outs {
			if links&(1<<i) != 0 {
				p := filepath.Join(tree, l.at)
				_ = os.RemoveAll(p)
				_ = os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.Symlink(l.to, p); err != nil {
					t.Fatal(err)
				}
			}
		}

		rels, err := release.Scan(tree)
		noMarker(t, "Scan error", errString(err))
		for _, r := range rels {
			noMarker(t, "release", r.Name+" "+r.Version+" "+r.ERTS)
			if !release.ValidName(r.Name) || (r.Version != "" && !release.ValidName(r.Version)) || !release.ValidName(r.ERTS) {
				t.Errorf("Scan returned names that are not valid: %q %q %q", r.Name, r.Version, r.ERTS)
			}
			noMarker(t, "Scrub error", errString(Scrub(r)))
			r.Version = startErlVersion(startErl, r.Version)
			dir := t.TempDir()
			out, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Build(Spec{Release: r, Out: out, Dir: dir, Node: "app@127.0.0.1", DistPort: 9000, EPMDPort: 4369, Cookie: "c"})
			out.Close()
			noMarker(t, "Build error", errString(err))
			_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					b, _ := os.ReadFile(p)
					if bytes.Contains(b, []byte(marker)) {
						t.Errorf("%s holds a host file's content", p)
					}
				}
				return nil
			})
		}
		_ = filepath.WalkDir(outside, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if b, _ := os.ReadFile(p); !bytes.Equal(b, secret) {
					t.Errorf("host file %s was changed", p)
				}
			}
			return nil
		})
	})
}

// startErlVersion returns the version of start_erl.data as a caller that
// skipped Scan's check would pass it on: Build must check it again.
func startErlVersion(data, fallback string) string {
	if f := strings.Fields(data); len(f) == 2 {
		return f[1]
	}
	return fallback
}

func write(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func noMarker(t *testing.T, what, s string) {
	t.Helper()
	if strings.Contains(s, marker) {
		t.Errorf("%s quotes a host file: %q", what, s)
	}
}
