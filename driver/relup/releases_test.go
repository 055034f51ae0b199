package relup

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestWriteRELEASES(t *testing.T) {
	root := writeTree(t, release("0.2.0", ""))
	p, err := Inspect(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteRELEASES(p); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "releases", "RELEASES")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.ReplaceAll(`%% coding: utf-8
[{release,"hello","0.2.0","13.1.5",[{kernel,"8.5.3","ROOT/lib/kernel-8.5.3"},{stdlib,"4.2","ROOT/lib/stdlib-4.2"},{sasl,"4.2","ROOT/lib/sasl-4.2"},{mnesia,"4.21","ROOT/lib/mnesia-4.21"},{hello,"0.2.0","ROOT/lib/hello-0.2.0"}],permanent}].
`, "ROOT", root)
	if string(data) != want {
		t.Errorf("RELEASES\n got %s\nwant %s", data, want)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != 0o644 {
		t.Errorf("RELEASES mode = %v, want -rw-r--r--", fi.Mode())
	}
	entries, err := os.ReadDir(filepath.Join(root, "releases"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"0.2.0", "RELEASES", "start_erl.data"}; !reflect.DeepEqual(names, want) {
		t.Errorf("releases/ holds %q, want %q", names, want)
	}

	got, err := ReadRELEASES(root)
	if err != nil {
		t.Fatal(err)
	}
	libs := make([]Lib, len(p.Apps))
	for i, a := range p.Apps {
		libs[i] = Lib{a.Name, a.Version, filepath.Join(root, "lib", a.Name+"-"+a.Version)}
	}
	wantEntries := []ReleaseEntry{{"hello", "0.2.0", "13.1.5", libs, "permanent"}}
	if !reflect.DeepEqual(got, wantEntries) {
		t.Errorf("ReadRELEASES = %+v, want %+v", got, wantEntries)
	}
}

func TestWriteRELEASESKeepsExisting(t *testing.T) {
	const existing = "%% written by relx\n[].\n"
	files := release("0.2.0", "")
	files["releases/RELEASES"] = existing
	root := writeTree(t, files)
	p, err := Inspect(root, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteRELEASES(p); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "releases", "RELEASES"))
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != existing {
		t.Errorf("RELEASES was replaced by %q", data)
	}
}

func TestWriteRELEASESNoDir(t *testing.T) {
	p := &Package{Root: filepath.Join(t.TempDir(), "missing"), Name: "hello", Version: "0.2.0", ERTS: "13.1.5"}
	err := WriteRELEASES(p)
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "relup: writing RELEASES: ") {
		t.Errorf("WriteRELEASES into a missing directory: %v", err)
	}
}

func TestReadRELEASES(t *testing.T) {
	relx := `%% coding: utf-8
[{release,"hello_erl","0.2.0","13.1.5",
          [{kernel,"8.5.3","./lib/kernel-8.5.3"},
           {hello_erl,"0.2.0","./lib/hello_erl-0.2.0"}],
          permanent},
 {release,"hello_erl","0.1.0","13.1.5",[],old}].
`
	tests := []struct {
		name, text string
		want       []ReleaseEntry
		wantErr    string // ROOT stands for the release root
	}{
		{"relx", relx, []ReleaseEntry{
			{"hello_erl", "0.2.0", "13.1.5", []Lib{
				{"kernel", "8.5.3", "./lib/kernel-8.5.3"},
				{"hello_erl", "0.2.0", "./lib/hello_erl-0.2.0"},
			}, "permanent"},
			{"hello_erl", "0.1.0", "13.1.5", nil, "old"},
		}, ""},
		{"empty", "[]. ", []ReleaseEntry{}, ""},
		{"char lists", `[{release,[104],[49],[49,51],[{kernel,[56],[47]}],current}].`,
			[]ReleaseEntry{{"h", "1", "13", []Lib{{"kernel", "8", "/"}}, "current"}}, ""},
		{"syntax", "[{release,\n", nil, "relup: ROOT/releases/RELEASES: line 2: unexpected end of input"},
		{"two terms", "[]. [].", nil, "relup: ROOT/releases/RELEASES: holds 2 terms, want 1"},
		{"not a list", "{release}.", nil, "relup: ROOT/releases/RELEASES: not a list of releases"},
		{"short entry", `[{release,"a","1","13",[]}].`, nil,
			"relup: ROOT/releases/RELEASES: entry 1 is not {release, Name, Vsn, ErtsVsn, Libs, Status}"},
		{"bad lib", `[{release,"a","1","13",[{kernel,"8"}],permanent}].`, nil,
			"relup: ROOT/releases/RELEASES: entry 1 is not {release, Name, Vsn, ErtsVsn, Libs, Status}"},
		{"bad status", `[{release,"a","1","13",[],"permanent"}].`, nil,
			"relup: ROOT/releases/RELEASES: entry 1 is not {release, Name, Vsn, ErtsVsn, Libs, Status}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, map[string]string{"releases/RELEASES": tt.text})
			got, err := ReadRELEASES(root)
			if tt.wantErr != "" {
				if want := strings.ReplaceAll(tt.wantErr, "ROOT", root); err == nil || err.Error() != want {
					t.Errorf("ReadRELEASES error\n got %v\nwant %s", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ReadRELEASES\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}
