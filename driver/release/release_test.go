package release

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// layout writes files under dir; a value of "ELF" copies a real executable
// of this machine.
func layout(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if body == "ELF" {
			b, err := os.ReadFile("/bin/true")
			if err != nil {
				t.Fatal(err)
			}
			body = string(b)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func mixRelease(prefix, name string) map[string]string {
	return map[string]string{
		prefix + "bin/" + name:                         "#!/bin/sh",
		prefix + "releases/COOKIE":                     "secret",
		prefix + "releases/start_erl.data":             "13.1.5 0.1.0",
		prefix + "releases/0.1.0/" + name + ".rel":     "{release, ...}.",
		prefix + "releases/0.1.0/elixir":               "#!/bin/sh",
		prefix + "erts-13.1.5/bin/beam.smp":            "ELF",
		prefix + "lib/" + name + "-0.1.0/ebin/a.beam":  "",
		prefix + "lib/kernel-8.5.3/ebin/kernel.app":    "",
		prefix + "lib/" + name + "-0.1.0/priv/x/y/z/w": "",
	}
}

func relxRelease(prefix, name string) map[string]string {
	return map[string]string{
		prefix + "bin/" + name:                     "#!/bin/sh",
		prefix + "bin/" + name + "-0.2.0":          "#!/bin/sh",
		prefix + "releases/start_erl.data":         "13.1.5 0.2.0",
		prefix + "releases/RELEASES":               "[].",
		prefix + "releases/0.2.0/" + name + ".rel": "{release, ...}.",
		prefix + "releases/0.2.0/vm.args":          "-name x@127.0.0.1",
		prefix + "erts-13.1.5/bin/beam.smp":        "ELF",
	}
}

func shipmentLayout(prefix, name string) map[string]string {
	return map[string]string{
		prefix + "entrypoint.sh":                      "#!/bin/sh\nset -eu\n\nPACKAGE=" + name + "\nBASE=$(dirname \"$0\")\n",
		prefix + name + "/ebin/" + name + ".app":      `{application, ` + name + `, [{vsn, "1.2.3"}]}.`,
		prefix + "gleam_stdlib/ebin/gleam_stdlib.app": "",
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestFind(t *testing.T) {
	cases := []struct {
		name     string
		files    map[string]string
		pick     string
		wantName string
		wantKind Kind
		wantVsn  string
		wantRoot string
		wantERTS bool
	}{
		{"mix at root", mixRelease("", "shop"), "", "shop", Mix, "0.1.0", ".", true},
		{"mix under a top-level dir", mixRelease("shop-0.1.0/", "shop"), "", "shop", Mix, "0.1.0", "shop-0.1.0", true},
		{"mix deep, as _build/prod/rel", mixRelease("_build/prod/rel/shop/", "shop"), "", "shop", Mix, "0.1.0", "_build/prod/rel/shop", true},
		{"umbrella release named after the umbrella", mixRelease("", "platform"), "", "platform", Mix, "0.1.0", ".", true},
		{"relx", relxRelease("", "api"), "", "api", Relx, "0.2.0", ".", true},
		{"relx without erts", func() map[string]string {
			m := relxRelease("", "api")
			delete(m, "erts-13.1.5/bin/beam.smp")
			return m
		}(), "", "api", Relx, "0.2.0", ".", false},
		{"shipment", shipmentLayout("erlang-shipment/", "hello"), "", "hello", Shipment, "1.2.3", "erlang-shipment", false},
		{"pick one of two roots", merge(mixRelease("a/", "shop"), relxRelease("b/", "api")), "api", "api", Relx, "0.2.0", "b", true},
		{"pick one of two releases in one relx dir", merge(relxRelease("", "api"), map[string]string{
			"bin/worker":                "#!/bin/sh",
			"releases/0.3.0/worker.rel": "{release, ...}.",
		}), "worker", "worker", Relx, "0.3.0", ".", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			layout(t, dir, tc.files)
			r, err := Find(dir, tc.pick)
			if err != nil {
				t.Fatal(err)
			}
			if r.Name != tc.wantName || r.Kind != tc.wantKind || r.Version != tc.wantVsn || r.BundlesERTS != tc.wantERTS {
				t.Errorf("got %s %s (%s) erts=%v, want %s %s (%s) erts=%v",
					r.Name, r.Version, r.Kind, r.BundlesERTS, tc.wantName, tc.wantVsn, tc.wantKind, tc.wantERTS)
			}
			if want := filepath.Join(dir, tc.wantRoot); r.Root != want {
				t.Errorf("root %s, want %s", r.Root, want)
			}
			if err := r.Check("13.1.5"); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
}

func TestFindErrors(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		pick  string
		want  string
	}{
		{"nothing", map[string]string{"README": "hi"}, "", "no release found"},
		{"several releases", merge(mixRelease("a/", "shop"), relxRelease("b/", "api")), "", "set release.name"},
		{"unknown name", mixRelease("", "shop"), "api", `release.name = "api" is not in the tarball`},
		{"bad start_erl.data", merge(mixRelease("", "shop"), map[string]string{"releases/start_erl.data": "garbage"}), "", "start_erl.data"},
		{"no .rel", map[string]string{"bin/x": "", "releases/start_erl.data": "1 2"}, "", "NAME.rel"},
		{"shipment without PACKAGE", map[string]string{"entrypoint.sh": "#!/bin/sh\n"}, "", "no PACKAGE= line"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			layout(t, dir, tc.files)
			_, err := Find(dir, tc.pick)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Run("no erts and no host erlang", func(t *testing.T) {
		dir := t.TempDir()
		m := relxRelease("", "api")
		delete(m, "erts-13.1.5/bin/beam.smp")
		layout(t, dir, m)
		r, err := Find(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Check(""); err == nil || !strings.Contains(err.Error(), "include_erts: false") {
			t.Fatalf("Check = %v, want an include_erts error", err)
		}
	})
	t.Run("shipment and no host erlang", func(t *testing.T) {
		dir := t.TempDir()
		layout(t, dir, shipmentLayout("", "hello"))
		r, _ := Find(dir, "")
		if err := r.Check(""); err == nil || !strings.Contains(err.Error(), "erlang-shipment") {
			t.Fatalf("Check = %v, want a shipment error", err)
		}
	})
	t.Run("erts for another architecture", func(t *testing.T) {
		dir := t.TempDir()
		layout(t, dir, mixRelease("", "shop"))
		beam := filepath.Join(dir, "erts-13.1.5/bin/beam.smp")
		b, _ := os.ReadFile(beam)
		// e_machine is at offset 18 of the ELF header.
		other := uint16(183) // EM_AARCH64
		if binary.LittleEndian.Uint16(b[18:]) == other {
			other = 62 // EM_X86_64
		}
		binary.LittleEndian.PutUint16(b[18:], other)
		if err := os.WriteFile(beam, b, 0o755); err != nil {
			t.Fatal(err)
		}
		r, _ := Find(dir, "")
		if err := r.Check("13.1.5"); err == nil || !strings.Contains(err.Error(), "built for") {
			t.Fatalf("Check = %v, want an architecture error", err)
		}
	})
	t.Run("erts that is not an executable", func(t *testing.T) {
		dir := t.TempDir()
		layout(t, dir, merge(mixRelease("", "shop"), map[string]string{"erts-13.1.5/bin/beam.smp": "MZ windows"}))
		r, _ := Find(dir, "")
		if err := r.Check("13.1.5"); err == nil || !strings.Contains(err.Error(), "another OS") {
			t.Fatalf("Check = %v, want an OS error", err)
		}
	})
}
