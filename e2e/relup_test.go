//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The hot-upgrade packages of the example apps are made by `beamctl relup`
// from plain release tarballs (e2e/apps/build.sh): the apps have no appup
// and no relup step. TestHotUpgrade ships the generated 0.2.0 packages;
// these tests ship hello_ex 0.3.0, whose relup goes up from 0.1.0 and from
// 0.2.0 (-from twice) and adds a dependency application, and check what
// beamctl relup refuses and warns about.

// TestRelupGenerated hot-upgrades hello_ex to 0.3.0 from each version its
// relup names, under load.
func TestRelupGenerated(t *testing.T) {
	for _, from := range []string{"0.1.0", "0.2.0"} {
		t.Run("from "+from, func(t *testing.T) {
			t.Parallel()
			v1 := "full/hello_ex-" + from + ".tar.gz"
			j := runJob(t, "beam.nomad.hcl", uniqueJob(t, "relup-"+strings.ReplaceAll(from, ".", "")), map[string]string{
				"task": "hello_ex", "source": releases.URL + "/" + v1, "sha256": releases.SHA256(t, v1), "hot": "true",
			})
			port := j.port("http")
			pid, _ := pidCount(t, waitHTTP(t, port, "/", 60*time.Second))
			loaded, _ := get(port, "/loaded")
			if from == "0.1.0" && !strings.Contains(loaded, "HelloEx.Legacy\n") {
				t.Fatalf("0.1.0 has not loaded HelloEx.Legacy: %q", loaded)
			}

			ok := j.hotUnderLoad(port, "0.3.0", "hello_ex-0.3.0.tar.gz")

			body, err := get(port, "/")
			if err != nil {
				t.Fatal(err)
			}
			pid2, count := pidCount(t, body)
			if !strings.Contains(body, "hello_ex 0.3.0") || pid2 != pid || count < int(ok) {
				t.Errorf("after the upgrade: %q; want 0.3.0, pid %d and a count of at least %d", body, pid, ok)
			}
			if st, _ := get(port, "/state"); !strings.Contains(st, "upgraded: true") && !strings.Contains(st, "upgraded: false") {
				t.Errorf("state after the upgrade: %q, want the map shape", st)
			}
			// add_application: the dependency runs; delete_module: the
			// dropped module is gone; add_module: the new one is loaded.
			if apps, _ := get(port, "/apps"); !strings.Contains(apps, "hello_dep\n") {
				t.Errorf("hello_dep is not running after the upgrade: %q", apps)
			}
			loaded, _ = get(port, "/loaded")
			if strings.Contains(loaded, "HelloEx.Legacy\n") || !strings.Contains(loaded, "HelloEx.Shape\n") {
				t.Errorf("loaded modules after the upgrade: %q; want HelloEx.Shape and no HelloEx.Legacy", loaded)
			}
			// The new child that beamctl relup warned about is not started.
			if reg, _ := get(port, "/registered"); strings.Contains(reg, "HelloEx.Ticker") {
				t.Errorf("HelloEx.Ticker runs after the hot upgrade, which does not start new children: %q", reg)
			}
		})
	}
}

// TestRelupCLI runs beamctl relup on the plain tarballs: the warnings and
// printed appups of a dry run, and the refusal of an ERTS change.
func TestRelupCLI(t *testing.T) {
	full := filepath.Join(releases.dir, "full")
	t.Run("dry run", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out.tar.gz")
		text, code := beamctl(t, "relup", "-dry-run", "-from", filepath.Join(full, "hello_ex-0.2.0.tar.gz"),
			"-to", filepath.Join(full, "hello_ex-0.3.0.tar.gz"), "-o", out)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, text)
		}
		for _, want := range []string{
			"HelloEx.Application: child HelloEx.Ticker is new; a hot upgrade does not start it",
			"add_application hello_dep (from 0.2.0)",
			"{add_module,'Elixir.HelloEx.Ticker'}",
			"dry run: nothing written",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("no %q in:\n%s", want, text)
			}
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("a dry run wrote %s", out)
		}
	})
	t.Run("ERTS change refused", func(t *testing.T) {
		dir := t.TempDir()
		to := filepath.Join(dir, "hello_erl-0.2.0.tar.gz")
		otherERTS(t, filepath.Join(full, "hello_erl-0.2.0.tar.gz"), to, "99.0")
		out := filepath.Join(dir, "out.tar.gz")
		text, code := beamctl(t, "relup", "-from", filepath.Join(full, "hello_erl-0.1.0.tar.gz"), "-to", to, "-o", out)
		if code != 1 || !strings.Contains(text, "ERTS changes from") || !strings.Contains(text, "to 99.0, which needs a new emulator: ship it with a full deploy") {
			t.Errorf("exit %d:\n%s", code, text)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("a refused relup wrote %s", out)
		}
	})
}

// TestRelupKeepsAndFallsBack: a relup the new release already holds keeps
// its entries, and a bundled ERTS that does not run here falls back to
// the host's Erlang of the same OTP.
func TestRelupKeepsAndFallsBack(t *testing.T) {
	full := filepath.Join(releases.dir, "full")
	t.Run("keeps the release's relup", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "hello_erl-0.3.0.tar.gz")
		// hello_erl-0.3.0.tar.gz is already a hot package, from 0.2.0.
		text, code := beamctl(t, "relup", "-from", filepath.Join(full, "hello_erl-0.1.0.tar.gz"),
			"-from", filepath.Join(full, "hello_erl-0.2.0.tar.gz"), "-to", filepath.Join(releases.dir, "hello_erl-0.3.0.tar.gz"), "-o", out)
		if code != 0 || !strings.Contains(text, "keeping the relup entries the release already has from 0.2.0") {
			t.Fatalf("exit %d:\n%s", code, text)
		}
		relup := string(readEntry(t, out, "releases/0.3.0/relup"))
		if !strings.Contains(relup, `{"0.1.0"`) || !strings.Contains(relup, `{"0.2.0"`) {
			t.Errorf("the relup does not go up from both 0.1.0 and 0.2.0: %s", relup)
		}
	})
	t.Run("host Erlang", func(t *testing.T) {
		dir := t.TempDir()
		to := filepath.Join(dir, "hello_erl-0.2.0.tar.gz")
		editTarball(t, filepath.Join(full, "hello_erl-0.2.0.tar.gz"), to, func(name string, data []byte) []byte {
			if strings.HasSuffix(name, "/bin/erlexec") {
				return []byte("#!/bin/sh\necho 'cannot execute binary file: Exec format error' >&2\nexit 126\n")
			}
			return data
		})
		out := filepath.Join(dir, "out.tar.gz")
		text, code := beamctl(t, "relup", "-from", filepath.Join(full, "hello_erl-0.1.0.tar.gz"), "-to", to, "-o", out)
		if code != 0 || !strings.Contains(text, "does not run here") || !strings.Contains(text, "systools runs in host Erlang") ||
			!strings.Contains(text, "(OTP 25, ERTS 13.1.5)") {
			t.Fatalf("exit %d:\n%s", code, text)
		}
		if relup := string(readEntry(t, out, "releases/0.2.0/relup")); !strings.Contains(relup, "hello_erl_shape") {
			t.Errorf("relup made by the host's Erlang: %s", relup)
		}
	})
}

// readEntry returns the content of one entry of a gzip-compressed tarball.
func readEntry(t *testing.T, file, name string) []byte {
	t.Helper()
	var out []byte
	editTarball(t, file, "", func(n string, data []byte) []byte {
		if strings.TrimPrefix(n, "./") == name {
			out = data
		}
		return data
	})
	if out == nil {
		t.Fatalf("%s has no %s", file, name)
	}
	return out
}

// otherERTS copies the tarball src to dst with its release built for
// another ERTS version, as a rebuild on a newer OTP would be.
func otherERTS(t *testing.T, src, dst, erts string) {
	t.Helper()
	old := strings.Fields(string(readEntry(t, src, "releases/start_erl.data")))[0]
	editTarball(t, src, dst, func(name string, data []byte) []byte {
		if strings.HasSuffix(name, ".rel") || strings.HasSuffix(name, "start_erl.data") {
			return bytes.ReplaceAll(data, []byte(old), []byte(erts))
		}
		return data
	})
}

// editTarball copies the gzip-compressed tarball src to dst (unless dst
// is empty) with each regular file's content passed through edit.
func editTarball(t *testing.T, src, dst string, edit func(name string, data []byte) []byte) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if h.Typeflag == tar.TypeReg {
			data = edit(h.Name, data)
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write(data)
	}
	_ = tw.Close()
	_ = zw.Close()
	if dst == "" {
		return
	}
	if err := os.WriteFile(dst, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
