package driver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

func TestPickTarget(t *testing.T) {
	const alloc = "0b0e7a4c-1111-2222-3333-444455556666"
	cases := []struct {
		name  string
		items map[string]string
		key   string
	}{
		{"own key", map[string]string{alloc: `{"version":"2"}`, "all": `{"version":"3"}`}, alloc},
		{"all", map[string]string{"other": `{"version":"2"}`, "all": `{"version":"3"}`}, "all"},
		{"none", map[string]string{"other": `{"version":"2"}`}, ""},
		{"blank own key falls back", map[string]string{alloc: " ", "all": `{"version":"3"}`}, "all"},
		{"no variable", nil, ""},
	}
	for _, tc := range cases {
		key, raw := hotspec.Pick(tc.items, alloc)
		if key != tc.key || (key != "" && raw != strings.TrimSpace(tc.items[key])) {
			t.Errorf("%s: got %q %q, want key %q", tc.name, key, raw, tc.key)
		}
	}
}

func TestParseTarget(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	cases := []struct {
		raw, err string
	}{
		{`{"version":"0.2.0","source":"s3://b/app-0.2.0.tar.gz","sha256":"` + sum + `"}`, ""},
		{`{"version":"0.1.0"}`, ""},
		{`{"version":"0.2.0","source":"https://x/a.tgz","rollout":"1f2e"}`, ""},
		{`{"source":"s3://b/k"}`, `"version" is missing`},
		{`{"version":"0.2.0","source":"ftp://x/a.tgz"}`, "unsupported"},
		{`{"version":"0.2.0","source":"s3://b/k","sha256":"abc"}`, "64 hex"},
		{`{"version":"0.2.0","sauce":"s3://b/k"}`, "unknown field"},
		{`0.2.0`, "not a JSON target"},
	}
	for _, tc := range cases {
		target, err := hotspec.Parse(tc.raw)
		if err == nil {
			err = checkSource(target)
		}
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("target %s: %v, want %q", tc.raw, err, tc.err)
		}
	}
}

func TestMergeTree(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	write := func(root, p, body string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(dst, "releases/start_erl.data", "13.1.5 0.1.0")
	write(dst, "lib/app-0.1.0/ebin/app.app", "old")
	write(src, "releases/start_erl.data", "13.1.5 0.2.0")
	write(src, "releases/0.2.0/app.rel", "new rel")
	write(src, "lib/app-0.2.0/ebin/app.app", "new")
	write(src, "lib/app-0.1.0/ebin/app.app", "would overwrite")
	root, err := os.OpenRoot(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	moved, err := taskdir.Copy(src, root, taskdir.Root, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(moved) != 2 { // releases/0.2.0 and lib/app-0.2.0, each whole
		t.Errorf("moved %v, want the two new directories", moved)
	}
	for p, want := range map[string]string{
		"releases/start_erl.data":    "13.1.5 0.1.0", // kept: release_handler owns it
		"releases/0.2.0/app.rel":     "new rel",
		"lib/app-0.2.0/ebin/app.app": "new",
		"lib/app-0.1.0/ebin/app.app": "old",
	} {
		b, err := os.ReadFile(filepath.Join(dst, p))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", p, b, err, want)
		}
	}
}
