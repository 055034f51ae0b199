package relup

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"
)

// writeTree writes files, keyed by slash-separated path, under a new
// temporary directory and returns the directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// relText returns a .rel file for release name at vsn on erts 13.1.5,
// using each form of application entry.
func relText(name, vsn string) string {
	return fmt.Sprintf(`%%%% coding: utf-8
{release,{%q,%q},
         {erts,"13.1.5"},
         [{kernel,"8.5.3"},
          {stdlib,"4.2",permanent},
          {sasl,"4.2",[]},
          {mnesia,"4.21",load,[]},
          {%s,%q}]}.
`, name, vsn, name, vsn)
}

// relupFor returns a relup for vsn with the given up-from and down-to
// entries, each written as {Vsn, Descr, Instructions}.
func relupFor(vsn string, up, down []string) string {
	return fmt.Sprintf("%%%% coding: utf-8\n{%q,\n [%s],\n [%s]}.\n",
		vsn, strings.Join(up, ",\n  "), strings.Join(down, ",\n  "))
}

// release returns the files of release hello at vsn, with relup as its
// relup file if it is not empty.
func release(vsn, relup string) map[string]string {
	files := map[string]string{
		"releases/start_erl.data":          "13.1.5 " + vsn,
		"releases/" + vsn + "/hello.rel":   relText("hello", vsn),
		"releases/" + vsn + "/start.boot":  "",
		"lib/hello-" + vsn + "/ebin/.keep": "",
	}
	if relup != "" {
		files["releases/"+vsn+"/relup"] = relup
	}
	return files
}

func TestInspect(t *testing.T) {
	apps := []App{
		{"kernel", "8.5.3", "permanent"},
		{"stdlib", "4.2", "permanent"},
		{"sasl", "4.2", "permanent"},
		{"mnesia", "4.21", "load"},
		{"hello", "0.2.0", "permanent"},
	}
	relx := release("0.2.0", relupFor("0.2.0", []string{`{"0.1.0",[],[]}`}, []string{`{"0.1.0",[],[]}`}))
	// relx keeps the directories of the releases it upgrades from.
	relx["releases/start_erl.data"] = "13.1.5 0.2.0\n"
	relx["releases/0.1.0/hello.rel"] = relText("hello", "0.1.0")
	relx["releases/hello.rel"] = relText("hello", "0.2.0")
	relx["releases/RELEASES"] = "[]."
	several := release("0.2.0", "")
	several["releases/0.2.0/other.rel"] = relText("other", "0.2.0")
	sorted := release("0.2.0", relupFor("0.2.0",
		[]string{`{"0.10.0",[],[]}`, `{"0.9.0",[],[]}`, `{"0.1.0","descr",[]}`, `{"0.9.0",[],[]}`},
		[]string{`{[48,46,49,46,48],[],[]}`}))

	tests := []struct {
		name     string
		files    map[string]string
		relName  string
		hasRelup bool
		up, down []string
		wantApps []App
		wantName string
		wantFile string
		wantVsn  string
		wantERTS string
	}{
		{"mix without relup", release("0.2.0", ""), "", false, nil, nil, apps, "hello", "releases/0.2.0/hello.rel", "0.2.0", "13.1.5"},
		{"relx with older releases", relx, "", true, []string{"0.1.0"}, []string{"0.1.0"}, apps, "hello", "releases/0.2.0/hello.rel", "0.2.0", "13.1.5"},
		{"named among several", several, "hello", false, nil, nil, apps, "hello", "releases/0.2.0/hello.rel", "0.2.0", "13.1.5"},
		{"versions sorted", sorted, "hello", true, []string{"0.1.0", "0.9.0", "0.10.0"}, []string{"0.1.0"}, apps, "hello", "releases/0.2.0/hello.rel", "0.2.0", "13.1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			p, err := Inspect(root, tt.relName)
			if err != nil {
				t.Fatal(err)
			}
			if p.Root != root || p.Name != tt.wantName || p.Version != tt.wantVsn || p.ERTS != tt.wantERTS {
				t.Errorf("got root %s, release %s %s on erts %s; want %s, %s %s on %s",
					p.Root, p.Name, p.Version, p.ERTS, root, tt.wantName, tt.wantVsn, tt.wantERTS)
			}
			if want := filepath.Join(root, filepath.FromSlash(tt.wantFile)); p.RelFile != want {
				t.Errorf("RelFile = %s, want %s", p.RelFile, want)
			}
			if !reflect.DeepEqual(p.Apps, tt.wantApps) {
				t.Errorf("Apps = %v, want %v", p.Apps, tt.wantApps)
			}
			if p.HasRelup() != tt.hasRelup {
				t.Errorf("HasRelup() = %v, want %v", p.HasRelup(), tt.hasRelup)
			}
			if got := p.UpFrom(); !reflect.DeepEqual(got, tt.up) {
				t.Errorf("UpFrom() = %q, want %q", got, tt.up)
			}
			if got := p.DownTo(); !reflect.DeepEqual(got, tt.down) {
				t.Errorf("DownTo() = %q, want %q", got, tt.down)
			}
		})
	}
}

func TestInspectRelativeRoot(t *testing.T) {
	root := writeTree(t, release("0.2.0", ""))
	t.Chdir(filepath.Dir(root))
	p, err := Inspect(filepath.Base(root), "hello")
	if err != nil {
		t.Fatal(err)
	}
	if p.Root != root {
		t.Errorf("Root = %s, want %s", p.Root, root)
	}
}

func TestInspectErrors(t *testing.T) {
	with := func(files map[string]string, name, body string) map[string]string {
		files[name] = body
		return files
	}
	without := func(files map[string]string, name string) map[string]string {
		delete(files, name)
		return files
	}
	okRelup := relupFor("0.2.0", nil, nil)
	tests := []struct {
		name    string
		files   map[string]string
		relName string
		want    string // ROOT stands for the release root
	}{
		{"no start_erl.data", without(release("0.2.0", ""), "releases/start_erl.data"), "",
			"relup: reading the release version: open ROOT/releases/start_erl.data: no such file or directory"},
		{"one version", with(release("0.2.0", ""), "releases/start_erl.data", "13.1.5\n"), "",
			`relup: ROOT/releases/start_erl.data: want "ERTS_VSN REL_VSN", got "13.1.5\n"`},
		{"version with slash", with(release("0.2.0", ""), "releases/start_erl.data", "13.1.5 ../0.2.0"), "",
			`relup: ROOT/releases/start_erl.data: want "ERTS_VSN REL_VSN", got "13.1.5 ../0.2.0"`},
		{"no .rel", without(release("0.2.0", ""), "releases/0.2.0/hello.rel"), "",
			"relup: no .rel file in ROOT/releases/0.2.0"},
		{"no release directory", with(release("0.2.0", ""), "releases/start_erl.data", "13.1.5 0.9.0"), "",
			"relup: open ROOT/releases/0.9.0: no such file or directory"},
		{"several .rel", with(release("0.2.0", ""), "releases/0.2.0/extra.rel", relText("extra", "0.2.0")), "",
			"relup: ROOT/releases/0.2.0 holds several .rel files (extra.rel, hello.rel); name the release to use"},
		{"named .rel missing", release("0.2.0", ""), "nope",
			"relup: open ROOT/releases/0.2.0/nope.rel: no such file or directory"},
		{"invalid name", release("0.2.0", ""), "../hello",
			`relup: invalid release name "../hello"`},
		{"name differs", with(release("0.2.0", ""), "releases/0.2.0/hello.rel", relText("other", "0.2.0")), "",
			`relup: ROOT/releases/0.2.0/hello.rel names release "other", not "hello"`},
		{"version differs", with(release("0.2.0", ""), "releases/0.2.0/hello.rel", relText("hello", "0.1.0")), "",
			"relup: ROOT/releases/0.2.0/hello.rel is for version 0.1.0, not 0.2.0"},
		{".rel syntax", with(release("0.2.0", ""), "releases/0.2.0/hello.rel", "{release,\n}."), "",
			"relup: ROOT/releases/0.2.0/hello.rel: line 2: unexpected '}'"},
		{".rel two terms", with(release("0.2.0", ""), "releases/0.2.0/hello.rel", "a. b."), "",
			"relup: ROOT/releases/0.2.0/hello.rel: holds 2 terms, want 1"},
		{".rel not a release", with(release("0.2.0", ""), "releases/0.2.0/hello.rel", "{rel, a, b, c}."), "",
			"relup: ROOT/releases/0.2.0/hello.rel: not a release file: want {release, {Name, Vsn}, {erts, Vsn}, Apps}"},
		{".rel bad id", with(release("0.2.0", ""), "releases/0.2.0/hello.rel", `{release, {hello, "0.2.0"}, {erts, "13.1.5"}, []}.`), "",
			"relup: ROOT/releases/0.2.0/hello.rel: the release name and version are not {Name, Vsn} strings"},
		{".rel bad erts", with(release("0.2.0", ""), "releases/0.2.0/hello.rel", `{release, {"hello", "0.2.0"}, {erts}, []}.`), "",
			"relup: ROOT/releases/0.2.0/hello.rel: the emulator version is not {erts, Vsn}"},
		{".rel bad app", with(release("0.2.0", ""), "releases/0.2.0/hello.rel", `{release, {"hello", "0.2.0"}, {erts, "13.1.5"}, [{kernel, "8.5.3"}, {stdlib, "4.2", 7}]}.`), "",
			`relup: ROOT/releases/0.2.0/hello.rel: application 2 is not {App, Vsn[, Type][, IncApps]}: {stdlib,"4.2",7}`},
		{"relup syntax", release("0.2.0", "{\"0.2.0\",\n[],\n[}."), "",
			"relup: ROOT/releases/0.2.0/relup: line 3: unexpected '}'"},
		{"relup for other version", release("0.2.0", relupFor("0.1.0", nil, nil)), "",
			`relup: ROOT/releases/0.2.0/relup: is for version "0.1.0", not 0.2.0`},
		{"relup not a triple", release("0.2.0", `{"0.2.0", []}.`), "",
			"relup: ROOT/releases/0.2.0/relup: not a relup: want {Vsn, UpFrom, DownTo}"},
		{"relup two terms", release("0.2.0", okRelup+okRelup), "",
			"relup: ROOT/releases/0.2.0/relup: holds 2 terms, want 1"},
		{"relup bad up entry", release("0.2.0", relupFor("0.2.0", []string{`{"0.1.0",[],[]}`, `{"0.1.1",[]}`}, nil)), "",
			"relup: ROOT/releases/0.2.0/relup: upgrade entry 2 is not {Vsn, Descr, Instructions}"},
		{"relup bad down list", release("0.2.0", `{"0.2.0", [], down}.`), "",
			"relup: ROOT/releases/0.2.0/relup: downgrade entries are not a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files)
			_, err := Inspect(root, tt.relName)
			if err == nil {
				t.Fatal("Inspect succeeded")
			}
			if want := strings.ReplaceAll(tt.want, "ROOT", root); err.Error() != want {
				t.Errorf("Inspect error\n got %s\nwant %s", err, want)
			}
		})
	}
}

func TestInspectSyntaxError(t *testing.T) {
	root := writeTree(t, release("0.2.0", "{\"0.2.0\",\n[],\n[}."))
	_, err := Inspect(root, "")
	var se *eterm.SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("Inspect error %v is not a *eterm.SyntaxError", err)
	}
	if want := filepath.Join(root, "releases", "0.2.0", "relup"); se.File != want || se.Line != 3 {
		t.Errorf("eterm.SyntaxError at %s:%d, want %s:3", se.File, se.Line, want)
	}
}

// TestInspectBuiltReleases checks Inspect on the releases the repository's
// build makes, when they have been built.
func TestInspectBuiltReleases(t *testing.T) {
	tests := []struct {
		tarball, name, vsn string
		up                 []string
	}{
		{"hello_ex-0.2.0.tar.gz", "hello_ex", "0.2.0", []string{"0.1.0"}},
		{"hello_erl-0.2.0.tar.gz", "hello_erl", "0.2.0", []string{"0.1.0"}},
		{"hello_erl-0.3.0.tar.gz", "hello_erl", "0.3.0", []string{"0.2.0"}},
	}
	for _, tt := range tests {
		t.Run(tt.tarball, func(t *testing.T) {
			tarball := filepath.Join("..", "..", "build", "releases", tt.tarball)
			if _, err := os.Stat(tarball); err != nil {
				t.Skipf("release not built: %v", err)
			}
			root := t.TempDir()
			untarReleases(t, tarball, root)
			p, err := Inspect(root, "")
			if err != nil {
				t.Fatal(err)
			}
			if p.Name != tt.name || p.Version != tt.vsn || !reflect.DeepEqual(p.UpFrom(), tt.up) {
				t.Errorf("got %s %s upgrading from %q, want %s %s from %q", p.Name, p.Version, p.UpFrom(), tt.name, tt.vsn, tt.up)
			}
			if err := p.CheckUpgrade(tt.name, tt.up[0], p.ERTS); err != nil {
				t.Errorf("CheckUpgrade: %v", err)
			}
		})
	}
}

// untarReleases extracts the releases/ directory of a release tarball.
func untarReleases(t *testing.T, tarball, dir string) {
	t.Helper()
	f, err := os.Open(tarball)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag != tar.TypeReg || !strings.HasPrefix(name, "releases"+string(filepath.Separator)) {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
