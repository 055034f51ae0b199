package release

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("12345678"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(p, 8); err != nil || string(b) != "12345678" {
		t.Errorf("at the limit: %q, %v", b, err)
	}
	_, err := ReadFile(p, 7)
	if !errors.Is(err, ErrTooLarge) || err.Error() != p+" is larger than 7 bytes, the most the driver reads of such a file; is it really part of the release?" {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 8); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// A file whose size says nothing is read up to the limit and no more.
	if _, err := ReadFile("/dev/zero", 1<<10); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1 KiB") {
		t.Errorf("/dev/zero: %v", err)
	}
}

func TestClip(t *testing.T) {
	for in, want := range map[string]string{
		"short":                        "short",
		strings.Repeat("x", 64):        strings.Repeat("x", 64),
		strings.Repeat("x", 65):        strings.Repeat("x", 64) + "…",
		strings.Repeat("x", 63) + "€€": strings.Repeat("x", 63) + "…",
	} {
		if got := Clip(in); got != want {
			t.Errorf("Clip(%q) = %q, want %q", in, got, want)
		}
	}
}

// secret is content of a hostile file, which no error may quote.
const secret = "SECRET-7f3a"

// Oversized or malformed release files give short errors that name the
// file and quote none of it, or only its start.
func TestFindHostileFiles(t *testing.T) {
	huge := strings.Repeat(secret+" ", 8<<10) // 96 KiB
	cases := []struct {
		name  string
		files map[string]string
		file  string // the file the error names
		want  string
	}{
		{"huge start_erl.data", merge(mixRelease("", "shop"), map[string]string{"releases/start_erl.data": huge}),
			"releases/start_erl.data", "larger than 64 KiB"},
		{"huge entrypoint.sh", map[string]string{"entrypoint.sh": "#!/bin/sh\n" + strings.Repeat(huge, 11)},
			"entrypoint.sh", "larger than 1 MiB"},
		{"huge .app", merge(shipmentLayout("", "hello"), map[string]string{"hello/ebin/hello.app": strings.Repeat(huge, 11)}),
			"hello/ebin/hello.app", "larger than 1 MiB"},
		{"garbage start_erl.data", merge(mixRelease("", "shop"), map[string]string{"releases/start_erl.data": "x" + strings.Repeat(" "+secret, 1000)}),
			"releases/start_erl.data", `found "x SECRET`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			layout(t, dir, tc.files)
			_, err := Find(dir, "")
			if err == nil {
				t.Fatal("found a release")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, filepath.Join(dir, tc.file)) {
				t.Errorf("error %q, want one naming %s with %q", msg, tc.file, tc.want)
			}
			if n := strings.Count(msg, secret); n*len(secret) > MaxQuoted || len(msg)-len(dir) > 200 {
				t.Errorf("error of %d bytes quotes the file %d times: %q", len(msg), n, msg)
			}
		})
	}
}

func TestFindListsFewNames(t *testing.T) {
	files := relxRelease("", "api")
	for i := range 30 {
		n := fmt.Sprintf("w%02d", i)
		files["bin/"+n] = "#!/bin/sh"
		files["releases/0.2.0/"+n+".rel"] = "{release, ...}."
	}
	dir := t.TempDir()
	layout(t, dir, files)
	_, err := Find(dir, "nope")
	if err == nil || !strings.Contains(err.Error(), "and 23 more") || len(err.Error()) > 400 {
		t.Fatalf("error %v", err)
	}
}
