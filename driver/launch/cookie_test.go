package launch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// mixScript is the shape of the lines mix's bin/NAME uses (Elixir 1.14).
const mixScript = `#!/bin/sh
RELEASE_COOKIE="${RELEASE_COOKIE:-"$(cat "$RELEASE_ROOT/releases/COOKIE")"}"
rpc () {
  exec "$REL_VSN_DIR/elixir" \
       --hidden --cookie "$RELEASE_COOKIE" \
       --rpc-eval "$RELEASE_NODE" "$1"
}
start () {
  exec "$REL_VSN_DIR/$REL_EXEC" \
       --cookie "$RELEASE_COOKIE" \
       $(release_distribution "$RELEASE_NODE") \
       --vm-args "$RELEASE_VM_ARGS" "$@"
}
`

const relxScript = `#!/bin/sh
        exec "$BINDIR/erlexec" -remsh "$NAME" -setcookie "${COOKIE}" -dist_listen false
    "$BINDIR/erl" -hidden -setcookie "$COOKIE" -kernel net_ticktime "$TICKTIME"
    result=$("$ERL_RPC" "${DYNAMIC_NAME}" -c "${COOKIE}" -address "${ADDRESS}" -e)
    ERL_FLAGS="${ERL_FLAGS} ${NAME_TYPE} $nodetool_id -setcookie ${COOKIE}" \
`

func TestScrubScript(t *testing.T) {
	cases := []struct {
		name, script string
		args         []string
		wantErr      string
	}{
		{"mix", mixScript, mixCookieArgs, ""},
		{"relx", relxScript, relxCookieArgs, ""},
		{"nothing to do", "#!/bin/sh\nexec erl -noshell\n", mixCookieArgs, ""},
		{"unknown form", "#!/bin/sh\nexec erl -setcookie \"$MY_COOKIE\"\n", relxCookieArgs, "does not know"},
		{"comment is fine", "#!/bin/sh\n# pass --cookie \"$RELEASE_COOKIE\" here\n", nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "app")
			if err := os.WriteFile(p, []byte(tc.script), 0o755); err != nil {
				t.Fatal(err)
			}
			err := scrubScript(p, tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(p)
			for _, line := range strings.Split(string(b), "\n") {
				if !strings.HasPrefix(strings.TrimSpace(line), "#") && strings.Contains(line, "COOKIE}\"") && strings.Contains(line, " -") {
					t.Errorf("cookie argument left: %s", line)
				}
			}
			if strings.Contains(string(b), `--cookie "$RELEASE_COOKIE"`) && tc.name != "comment is fine" {
				t.Errorf("mix cookie argument left:\n%s", b)
			}
			fi, _ := os.Stat(p)
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("mode %v, want 0755", fi.Mode().Perm())
			}
		})
	}
}

func TestWriteHome(t *testing.T) {
	dir := t.TempDir()
	home, err := writeHome(dir, "s3cr3t-Cookie", -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(home, ".erlang.cookie"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o400 {
		t.Errorf(".erlang.cookie mode %v, want 0400 (the VM refuses anything looser)", fi.Mode().Perm())
	}
	// A second start replaces the read-only file.
	if _, err := writeHome(dir, "other", -1, -1); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(home, ".erlang.cookie")); string(b) != "other" {
		t.Errorf("cookie is %q after rewrite", b)
	}
	for _, bad := range []string{"", "has space", "tab\there", strings.Repeat("x", 256), "naïve"} {
		_, err := writeHome(dir, bad, -1, -1)
		if err == nil {
			t.Errorf("cookie %q accepted", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error quotes the cookie: %v", err)
		}
	}
}
