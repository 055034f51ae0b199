package launch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
)

func TestWriteCookieHome(t *testing.T) {
	dir := t.TempDir()
	out, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := writeCookieHome(out, "s3cr3t-Cookie", taskdir.Root); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "home", ".erlang.cookie"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o400 {
		t.Errorf(".erlang.cookie mode %v, want 0400 (the VM refuses anything looser)", fi.Mode().Perm())
	}
	// The directory is fresh on every start: a home that is already there
	// (a link the task planted, say) is refused, never written through.
	if err := writeCookieHome(out, "other", taskdir.Root); err == nil {
		t.Error("wrote into an existing home")
	}
	for _, bad := range []string{"", "has space", "tab\there", strings.Repeat("x", 256), "naïve"} {
		err := writeCookieHome(out, bad, taskdir.Root)
		if err == nil {
			t.Errorf("cookie %q accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error quotes the cookie: %v", err)
		}
	}
}

func TestScrubRefuses(t *testing.T) {
	const relxHooked = "#!/bin/sh\nPRE_START_HOOKS=\"../releases/0.1.0/hooks/check\"\n"
	cases := []struct {
		name string
		kind release.Kind
		edit map[string]string
		file string // where the refusal points
		at   string // text of the line it points at
		what string
		// hidden must not appear in the error: the text after the token.
		hidden []string
	}{
		{"unquoted --cookie in bin/NAME", release.Mix,
			map[string]string{"bin/app": strings.Replace(mixBinFixture, `--hidden --cookie "$RELEASE_COOKIE"`, `--hidden --cookie $RELEASE_COOKIE`, 1)},
			"bin/app", "--hidden --cookie", `a --cookie flag ("--cookie")`, []string{"$RELEASE_COOKIE \\"}},
		{"--cookie= in env.sh", release.Mix,
			map[string]string{"releases/0.1.0/env.sh": mixEnvFixture + `exec "$REL_VSN_DIR/elixir" --cookie="$Ab9s3cretZ" --eval x` + "\n"},
			"releases/0.1.0/env.sh", "Ab9s3cretZ", "--cookie flag", []string{"Ab9s3cretZ", `="$`}},
		{"-setcookie<TAB> in a relx hook", release.Relx,
			map[string]string{"bin/hooks/pre_start": "#!/bin/sh\nC=Kp4s3cretQ\n\"$BINDIR/erl\" -setcookie\t\"$C\" -noshell\n"},
			"bin/hooks/pre_start", "-setcookie", "-setcookie flag", []string{"Kp4s3cretQ", `"$C"`}},
		{"erl_call -c in a relx extension", release.Relx,
			map[string]string{"bin/extensions/foo": "#!/bin/sh\n\"$ERTS_DIR/bin/erl_call\" -c Lit3ralS3cret -a 'erlang node'\n"},
			"bin/extensions/foo", "erl_call", "-c flag given to erl_call", []string{"Lit3ralS3cret", "erlang node"}},
		{"erl_call -c continued on the next line", release.Relx,
			map[string]string{"bin/extensions/foo": "#!/bin/sh\nresult=$(\"$ERL_RPC\" -a \"erlang node\" \\\n\t-c Ct9s3cretV)\n"},
			"bin/extensions/foo", "\t-c", "-c flag given to erl_call", []string{"Ct9s3cretV"}},
		{"releases/COOKIE read in releases/VSN/elixir", release.Mix,
			map[string]string{"releases/0.1.0/elixir": elixirFixture + `set -- "$@" -extra "$(cat "$SCRIPT_PATH/../../releases/COOKIE")"` + "\n"},
			"releases/0.1.0/elixir", "-extra", "the releases/COOKIE file", []string{"SCRIPT_PATH", "cat"}},
		{".erlang.cookie read in a hook relx names under releases/VSN", release.Relx,
			map[string]string{"bin/app": relxHooked, "releases/0.1.0/hooks/check": "#!/bin/sh\nerl -noshell -extra \"$(cat ~/.erlang.cookie)\"\n"},
			"releases/0.1.0/hooks/check", "erlang.cookie", "the .erlang.cookie file", []string{"cat ~"}},
		{"a hook relx names outside bin/hooks", release.Relx,
			map[string]string{"bin/app": "#!/bin/sh\nPOST_START_HOOKS=\"../priv/post_start|arg\"\n", "priv/post_start": "erl_call -c \"$(cat \"$F\")\" -a x\n"},
			"priv/post_start", "erl_call", "-c flag given to erl_call", []string{"$F"}},
		{"a quote inside -setcookie, in a hook no script names", release.Relx,
			map[string]string{"bin/hooks/other": "#!/bin/sh\nexec erl -set\"\"cookie Qz7s3cretW\n"},
			"bin/hooks/other", "cookie", "-setcookie flag", []string{"Qz7s3cretW"}},
		{"--cookie in another script of releases/VSN", release.Mix,
			map[string]string{"releases/0.1.0/iex": "#!/bin/sh\nexec \"$SCRIPT_PATH\"/elixir --cookie \"$RELEASE_COOKIE\" +iex\n"},
			"releases/0.1.0/iex", "--cookie", "--cookie flag", []string{"$RELEASE_COOKIE"}},
		{"a braced cookie variable in env.sh", release.Mix,
			map[string]string{"releases/0.1.0/env.sh": "export ERL_AFLAGS=\"-name x ${MY_COOKIE}\"\n"},
			"releases/0.1.0/env.sh", "MY_COOKIE", "expansion of the cookie variable MY_COOKIE", []string{"-name x"}},
		{"RELEASE_COOKIE in env.sh, even in a comment", release.Mix,
			map[string]string{"releases/0.1.0/env.sh": mixEnvFixture + "# export RELEASE_COOKIE=Hh3s3cretJ\n"},
			"releases/0.1.0/env.sh", "Hh3s3cretJ", "the cookie variable RELEASE_COOKIE", []string{"Hh3s3cretJ"}},
		{"an allowed line inside a quoted string", release.Relx,
			map[string]string{"bin/app": relxBinFixture + "exec erl -eval \"\nCOOKIE=\"$RELX_COOKIE\"\n\"\n"},
			"bin/app", `COOKIE="$RELX_COOKIE"` + "\n\"", "RELX_COOKIE", []string{"exec erl"}},
		{"-setcookie in a shipment's entrypoint.sh", release.Shipment,
			map[string]string{"entrypoint.sh": "#!/bin/sh\nexec erl -setcookie Mm5s3cretN -noshell\n"},
			"entrypoint.sh", "-setcookie", "-setcookie flag", []string{"Mm5s3cretN"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{}
			switch tc.kind {
			case release.Mix:
				files = mixFiles()
			case release.Relx:
				files = relxFiles()
			}
			r := releaseOf(t, tc.kind, files, tc.edit)
			before := files["bin/app"]
			err := Scrub(r)
			if err == nil {
				t.Fatal("release accepted")
			}
			line := lineOf(files[tc.file], tc.at)
			if tc.at == `COOKIE="$RELX_COOKIE"`+"\n\"" {
				line = strings.Count(files[tc.file], "\n") - 1
			}
			want := fmt.Sprintf("%s line %d: ", tc.file, line)
			msg := err.Error()
			if !strings.HasPrefix(msg, want) || !strings.Contains(msg, tc.what) {
				t.Errorf("error %q, want it to start with %q and name %q", msg, want, tc.what)
			}
			if !strings.Contains(msg, "through HOME/.erlang.cookie") {
				t.Errorf("error %q does not say how to fix it", msg)
			}
			for _, h := range tc.hidden {
				if strings.Contains(msg, h) {
					t.Errorf("error quotes %q from the line: %s", h, msg)
				}
			}
			if tc.kind != release.Shipment && read(t, r, "bin/app") != before {
				t.Error("bin/app was rewritten although the release was refused")
			}
		})
	}
}

func TestScrubRefusesHookOutsideRelease(t *testing.T) {
	r := releaseOf(t, release.Relx, relxFiles(), map[string]string{"bin/app": "#!/bin/sh\nPOST_START_HOOKS=\"../../elsewhere/hook|x\"\n"})
	if err := Scrub(r); err == nil || !strings.Contains(err.Error(), "outside the release") {
		t.Fatalf("error %v, want the hook outside the release refused", err)
	}
}

// The rewritten script replaces a link; it never writes through it.
func TestScrubReplacesLinkNotTarget(t *testing.T) {
	r := releaseOf(t, release.Mix, mixFiles(), nil)
	shared := filepath.Join(r.Root, "shared")
	if err := os.WriteFile(shared, []byte(mixBinFixture), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(r.Root, "bin/app")
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../shared", bin); err != nil {
		t.Fatal(err)
	}
	if err := Scrub(r); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(shared); string(b) != mixBinFixture {
		t.Error("the link's target was rewritten")
	}
	if fi, err := os.Lstat(bin); err != nil || !fi.Mode().IsRegular() || strings.Contains(read(t, r, "bin/app"), "--cookie") {
		t.Errorf("bin/app is not a scrubbed regular file: %v", err)
	}
}

// A script that is a link out of the tree is neither read nor rewritten:
// the release is refused.
func TestScrubRefusesLinkOutOfTree(t *testing.T) {
	r := releaseOf(t, release.Mix, mixFiles(), nil)
	outside := filepath.Join(t.TempDir(), "shared")
	if err := os.WriteFile(outside, []byte(mixBinFixture), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(r.Root, "bin/app")
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, bin); err != nil {
		t.Fatal(err)
	}
	if err := Scrub(r); err == nil {
		t.Fatal("a start script linked out of the tree was accepted")
	}
	if b, _ := os.ReadFile(outside); string(b) != mixBinFixture {
		t.Error("the link's target was rewritten")
	}
}

// A variable assigned from the cookie, on a line a shape allows, is the
// cookie in every script; so is one assigned erl_call.
func TestTaintFollowsAssignments(t *testing.T) {
	tn := newTaint()
	sh := &shape{allowed: []string{`MINE="$RELEASE_COOKIE"`}}
	// In reverse order, and across scripts.
	tn.learn([]*script{
		{shape: plain, lines: logicalLines("X3=${X2:-}\nX2=\"$CALL\"/x\nX4=$X3_NOT\n")},
		{shape: sh, lines: logicalLines("MINE=\"$RELEASE_COOKIE\"\nCALL=\"$ERTS_DIR/bin/erl_call\"\n")},
	})
	f := tn.scan(logicalLines("#!/bin/sh\nprintenv MINE\n"), plain)
	if f == nil || f.line != 2 || f.what != "the cookie variable MINE" {
		t.Errorf("finding %+v, want MINE on line 2", f)
	}
	for _, call := range []string{"$CALL", "${X3}", "$X2"} {
		f = tn.scan(logicalLines("#!/bin/sh\n"+call+" -c x\n"), plain)
		if f == nil || !strings.Contains(f.what, "erl_call") {
			t.Errorf("finding %+v, want -c given to erl_call through %s", f, call)
		}
	}
	for _, ok := range []string{"cut -c 2- file", "$X4 -c x", "$CALLER -c x"} {
		if f := tn.scan(logicalLines("#!/bin/sh\n"+ok+"\n"), plain); f != nil {
			t.Errorf("%s refused: %+v", ok, f)
		}
	}
}
