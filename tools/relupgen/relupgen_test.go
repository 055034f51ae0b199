package relupgen

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeTarball(t *testing.T, file string, entries map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range []string{"./releases/1.0.0/relup", "lib/a-1.0/ebin/a.beam", "bin/shop"} {
		data, ok := entries[name]
		if !ok {
			continue
		}
		mode := int64(0o644)
		if name == "bin/shop" {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		_, _ = tw.Write([]byte(data))
	}
	_ = tw.Close()
	_ = zw.Close()
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readTarball(t *testing.T, file string) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	out := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		h.PAXRecords = map[string]string{"content": string(b)}
		out[h.Name] = h
	}
}

func TestRewrite(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "in.tar.gz")
	writeTarball(t, src, map[string]string{"./releases/1.0.0/relup": "old relup", "lib/a-1.0/ebin/a.beam": "beam", "bin/shop": "#!/bin/sh"})
	dst := filepath.Join(dir, "out.tar.gz")
	sum, err := rewrite(src, dst, map[string][]byte{
		"releases/1.0.0/relup":   []byte("new relup"),
		"lib/a-1.0/ebin/a.appup": []byte("appup"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum) != 64 {
		t.Errorf("sha256 %q", sum)
	}
	got := readTarball(t, dst)
	for name, want := range map[string]string{
		"./releases/1.0.0/relup": "new relup", // replaced, under its own name
		"lib/a-1.0/ebin/a.beam":  "beam",
		"bin/shop":               "#!/bin/sh",
		"lib/a-1.0/ebin/a.appup": "appup", // added
	} {
		h, ok := got[name]
		if !ok {
			t.Errorf("%s missing from %v", name, got)
			continue
		}
		if h.PAXRecords["content"] != want {
			t.Errorf("%s holds %q, want %q", name, h.PAXRecords["content"], want)
		}
	}
	if got["bin/shop"].Mode != 0o755 {
		t.Errorf("bin/shop lost its mode: %o", got["bin/shop"].Mode)
	}
	if len(got) != 4 {
		t.Errorf("%d entries, want 4", len(got))
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o644 {
		t.Errorf("package mode %v", fi.Mode())
	}
}

func TestParseRelup(t *testing.T) {
	r, err := parseRelup([]byte(`{"2",[{"1",[],[point_of_no_return]}],[{"1",[],[point_of_no_return]}]}.`))
	if err != nil || len(r) != 3 {
		t.Fatalf("%v %v", r, err)
	}
	for _, bad := range []string{`{"2",[{"1",[]}],[]}.`, `{"2",x,[]}.`, `[].`, `{"2",[],[]}. {"3",[],[]}.`, ``} {
		if _, err := parseRelup([]byte(bad)); err == nil {
			t.Errorf("%s parsed", bad)
		}
	}
}

func TestOTPMajor(t *testing.T) {
	for erts, otp := range map[string]int{"13.1.5": 25, "14.2.5.4": 26, "15.0": 27, "16.0.1": 28, "10.7": 22, "10.2": 21, "9.3": 20, "x": 0} {
		if got := otpMajor(erts); got != otp {
			t.Errorf("otpMajor(%s) = %d, want %d", erts, got, otp)
		}
	}
}

func TestPrintable(t *testing.T) {
	if got := printable("a\x1b[2Jb\nc\u009b"); got != "a?[2Jb\nc?" {
		t.Errorf("printable: %q", got)
	}
}

// TestHost picks the host's Erlang only for a release of the same OTP
// (`make unit` installs Erlang from Debian).
func TestHost(t *testing.T) {
	ctx := context.Background()
	work := t.TempDir()
	ok, err := host(ctx, "erl", "13.1.5", work)
	if err != nil {
		t.Fatalf("the host's OTP 25 for ERTS 13.1.5: %v", err)
	}
	if !strings.Contains(ok.Desc, "OTP 25") {
		t.Errorf("description %q", ok.Desc)
	}
	out, err := ok.eval(ctx, `io:format("~p", [1 + 1])`)
	if err != nil || out != "2" {
		t.Errorf("eval: %q, %v", out, err)
	}
	// It runs in the private work directory, whose .erlang (none) is the
	// only one a start_clean boot evaluates besides the user's own.
	if cwd, err := ok.eval(ctx, `{ok, D} = file:get_cwd(), io:format("~s", [D])`); err != nil || cwd != work {
		t.Errorf("runs in %q (%v), want %q", cwd, err, work)
	}
	if _, err := host(ctx, "erl", "14.2", t.TempDir()); err == nil || !strings.Contains(err.Error(), "needs OTP 26 (ERTS 14.2)") {
		t.Errorf("the host's OTP 25 for ERTS 14.2: %v", err)
	}
	if _, err := host(ctx, "/nonexistent/erl", "13.1.5", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no Erlang found") {
		t.Errorf("a missing erl: %v", err)
	}
}
