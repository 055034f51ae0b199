package launch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

// The fixtures are the cookie-related parts of real scripts, verbatim: mix's
// bin/NAME, env.sh, elixir and iex from Elixir 1.14.0, and relx 4.7.0's
// extended start script (rebar3 3.19.0) with hooks and an extension.

const mixBinFixture = `#!/bin/sh
set -e

REL_VSN_DIR="$RELEASE_ROOT/releases/$RELEASE_VSN"
. "$REL_VSN_DIR/env.sh"

RELEASE_COOKIE="${RELEASE_COOKIE:-"$(cat "$RELEASE_ROOT/releases/COOKIE")"}"
export RELEASE_COOKIE
RELEASE_MODE="${RELEASE_MODE:-"embedded"}"
export RELEASE_MODE

rpc () {
  exec "$REL_VSN_DIR/elixir" \
       --hidden --cookie "$RELEASE_COOKIE" \
       $(release_distribution "rpc-$(rand)-$RELEASE_NODE") \
       --boot "$REL_VSN_DIR/$RELEASE_BOOT_SCRIPT_CLEAN" \
       --rpc-eval "$RELEASE_NODE" "$1"
}

start () {
  export_release_sys_config
  REL_EXEC="$1"
  shift
  exec "$REL_VSN_DIR/$REL_EXEC" \
       --cookie "$RELEASE_COOKIE" \
       $(release_distribution "$RELEASE_NODE") \
       --vm-args "$RELEASE_VM_ARGS" "$@"
}

case $1 in
  eval)
    export_release_sys_config
    exec "$REL_VSN_DIR/elixir" \
       --cookie "$RELEASE_COOKIE" \
       --erl-config "$RELEASE_SYS_CONFIG" \
       --vm-args "$RELEASE_VM_ARGS" --eval "$2"
    ;;

  remote)
    exec "$REL_VSN_DIR/iex" \
         --werl --hidden --cookie "$RELEASE_COOKIE" \
         $(release_distribution "rem-$(rand)-$RELEASE_NODE") \
         --remsh "$RELEASE_NODE"
    ;;
esac
`

const mixEnvFixture = `#!/bin/sh

# # Set the release to work across nodes.
# # RELEASE_DISTRIBUTION must be "sname" (local), "name" (distributed) or "none".
# export RELEASE_DISTRIBUTION=name
# export RELEASE_NODE=app
`

const elixirFixture = `#!/bin/sh
set -e

ELIXIR_VERSION=1.14.0

if [ $# -eq 0 ] || { [ $# -eq 1 ] && { [ "$1" = "--help" ] || [ "$1" = "-h" ]; }; }; then
  cat <<USAGE >&2
Usage: $(basename "$0") [options] [.exs file] [data]

  --cookie COOKIE              Sets a cookie for this distributed node
  --hidden                     Makes a hidden node

** Standalone options can't be combined with other options.
USAGE
  exit 1
fi

while [ $I -le $LENGTH ]; do
  case "$1" in
    --cookie)
        S=2
        erl_set "-setcookie"
        erl_set "$2"
        ;;
    --sname|--name)
        S=2
        erl_set "$(echo "$1" | cut -c 2-)"
        erl_set "$2"
        ;;
  esac
done
`

const iexFixture = `#!/bin/sh
set -e

SELF=$(readlink_f "$0")
SCRIPT_PATH=$(dirname "$SELF")
exec "$SCRIPT_PATH"/elixir --no-halt --erl "-noshell -user Elixir.IEx.CLI" +iex "$@"
`

const relxBinFixture = `#!/bin/sh
PRE_START_HOOKS="hooks/pre_start"
POST_START_HOOKS="hooks/builtin/pid|/tmp/myrel.pid hooks/builtin/wait_for_process|myrel_sup hooks/builtin/wait_for_vm_start"
STATUS_HOOK="hooks/pre_start"
EXTENSIONS="foo|undefined"

relx_get_nodename() {
    id="longname$(relx_gen_id)-${NAME}"
    if [ -z "$COOKIE" ]; then
        "$BINDIR/erlexec" -boot "$REL_DIR"/start_clean \
                          -noshell "${NAME_TYPE}" "$id"
    else
        # running with setcookie prevents a ~/.erlang.cookie from being created
        # shellcheck disable=SC2086
        "$BINDIR/erlexec" -boot "$REL_DIR"/start_clean \
                          -eval '[_,H]=re:split(atom_to_list(node()),"@",[unicode,{return,list}]), io:format("~s~n",[H]), halt()' \
                          -setcookie "${COOKIE}" \
                          -dist_listen false \
                          -noshell "${NAME_TYPE}" "$id"
    fi
}

relx_rem_sh() {
    exec "$BINDIR/erlexec" ${remote_nodename} -remsh "$NAME" -boot "$REL_DIR"/start_clean -mode interactive \
         -boot_var SYSTEM_LIB_DIR "$SYSTEM_LIB_DIR" \
         -setcookie "$COOKIE" -hidden -kernel net_ticktime "$TICKTIME" \
         -dist_listen false
}

erl_rpc() {
            if [ "$ADDRESS" ]; then
                result=$("$ERL_RPC" "${DYNAMIC_NAME}" -c "${COOKIE}" -address "${ADDRESS}" -timeout "${RELX_RPC_TIMEOUT}" -a "${command}")
            else
                result=$("$ERL_RPC" "$NAME_TYPE" "$NAME" "${DYNAMIC_NAME}" -c "${COOKIE}" -timeout "${RELX_RPC_TIMEOUT}" -a "${command}")
            fi
            if [ "$ERL_DIST_PORT" ]; then
                result=$(echo "${command}" | "$ERL_RPC" "${DYNAMIC_NAME}" -c "${COOKIE}" -address "${ADDRESS}" -timeout "${RELX_RPC_TIMEOUT}" -e)
            fi
}

relx_nodetool() {
    if [ -z "${START_EPMD}" ]; then
        ERL_FLAGS="${ERL_FLAGS} ${DIST_ARGS} ${EXTRA_DIST_ARGS} ${NAME_TYPE} $nodetool_id -setcookie ${COOKIE}" \
                 "$ERTS_DIR/bin/escript" \
                 "$ROOTDIR/bin/nodetool" \
                 "$command" "$@"
    else
        ERL_FLAGS="${ERL_FLAGS} ${DIST_ARGS} ${EXTRA_DIST_ARGS} ${NAME_TYPE} $nodetool_id -setcookie ${COOKIE} -dist_listen false" \
                 "$ERTS_DIR/bin/escript" \
                 "$ROOTDIR/bin/nodetool" \
                 $START_EPMD "$NAME_TYPE" "$NAME" "$command" "$@"
    fi
}

relx_get_extension_script() {
    # foo_extension="path/to/foo_script";bar_extension="path/to/bar_script"
    foo_extension="extensions/foo"
    eval echo "$""${EXTENSION}_extension"
}

# Extract the target cookie
# Do this before relx_get_nodename so we can use it and not create a ~/.erlang.cookie
if [ -n "$RELX_COOKIE" ]; then
    COOKIE="$RELX_COOKIE"
else
    COOKIE_ARG="$(grep '^-setcookie' "$VMARGS_PATH" || true)"
    DEFAULT_COOKIE_FILE="$HOME/.erlang.cookie"
    if [ -z "$COOKIE_ARG" ]; then
        if [ -f "$DEFAULT_COOKIE_FILE" ]; then
            COOKIE="$(cat "$DEFAULT_COOKIE_FILE")"
        else
            echo "No cookie is set or found. This limits the scripts functionality, installing, upgrading, rpc and getting a list of versions will not work."
        fi
    else
        # Extract cookie name from COOKIE_ARG
        COOKIE="$(echo "$COOKIE_ARG" | awk '{print $2}')"
    fi
fi

case "$1" in
    install|upgrade|downgrade)
        relx_run_hooks "$PRE_INSTALL_UPGRADE_HOOKS"

        exec "$BINDIR/escript" "$ROOTDIR/bin/install_upgrade.escript" \
             "$COMMAND" "{'$REL_NAME', \"$NAME_TYPE\", '$NAME', '$COOKIE'}" "$@"

        relx_run_hooks "$POST_INSTALL_UPGRADE_HOOKS"
        ;;

    versions)
        exec "$BINDIR/escript" "$ROOTDIR/bin/install_upgrade.escript" \
             "versions" "{'$REL_NAME', \"$NAME_TYPE\", '$NAME', '$COOKIE'}" "$@"
        ;;
esac
`

const waitForVMFixture = `#!/bin/sh

# loop until the VM starts responding to pings
while ! erl_rpc erlang is_alive > /dev/null
do
    sleep 1
done
`

func mixFiles() map[string]string {
	return map[string]string{
		"bin/app":                   mixBinFixture,
		"releases/0.1.0/env.sh":     mixEnvFixture,
		"releases/0.1.0/elixir":     elixirFixture,
		"releases/0.1.0/iex":        iexFixture,
		"releases/0.1.0/vm.args":    "## -mode/-name/-sname/-setcookie are configured via env vars, do not set them here\n",
		"releases/0.1.0/start.boot": "\x83h\x03d\x00\x06script",
		"releases/COOKIE":           "BUILDTIMECOOKIE",
	}
}

func relxFiles() map[string]string {
	return map[string]string{
		"bin/app":                             relxBinFixture,
		"bin/app-0.1.0":                       relxBinFixture,
		"bin/hooks/pre_start":                 "#!/bin/sh\necho pre start\n",
		"bin/hooks/builtin/wait_for_vm_start": waitForVMFixture,
		"bin/extensions/foo":                  "#!/bin/sh\necho foo\nexit 0\n",
	}
}

// releaseOf writes files into a fresh release root, with edits applied.
func releaseOf(t testing.TB, kind release.Kind, files map[string]string, edits map[string]string) *release.Release {
	t.Helper()
	root := t.TempDir()
	for k, v := range edits {
		files[k] = v
	}
	for rel, body := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &release.Release{Root: root, Name: "app", Version: "0.1.0", Kind: kind}
}

func read(t *testing.T, r *release.Release, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.Root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestScrubMixRelease(t *testing.T) {
	r := releaseOf(t, release.Mix, mixFiles(), nil)
	if err := Scrub(r); err != nil {
		t.Fatal(err)
	}
	bin := read(t, r, "bin/app")
	if strings.Contains(bin, "--cookie") {
		t.Errorf("--cookie left in bin/app:\n%s", bin)
	}
	for _, keep := range []string{"--hidden \\\n", "export RELEASE_COOKIE\n", `--remsh "$RELEASE_NODE"`} {
		if !strings.Contains(bin, keep) {
			t.Errorf("bin/app lost %q:\n%s", keep, bin)
		}
	}
	if n, m := strings.Count(bin, "\n"), strings.Count(mixBinFixture, "\n"); n != m {
		t.Errorf("bin/app has %d lines, want %d", n, m)
	}
	if read(t, r, "releases/0.1.0/elixir") != elixirFixture {
		t.Error("releases/0.1.0/elixir was rewritten; it passes no cookie of its own")
	}
	if fi, _ := os.Stat(filepath.Join(r.Root, "bin/app")); fi.Mode().Perm() != 0o755 {
		t.Errorf("bin/app mode %v, want 0755", fi.Mode().Perm())
	}
	// A second pass finds nothing to do: the tree of a restarted task.
	if err := Scrub(r); err != nil || read(t, r, "bin/app") != bin {
		t.Errorf("second Scrub: %v, changed: %v", err, read(t, r, "bin/app") != bin)
	}
}

func TestScrubRelxRelease(t *testing.T) {
	r := releaseOf(t, release.Relx, relxFiles(), nil)
	if err := Scrub(r); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{"bin/app", "bin/app-0.1.0"} {
		s := read(t, r, bin)
		for _, gone := range []string{"-setcookie \"", "-setcookie ${COOKIE}", `-c "${COOKIE}"`, `'$COOKIE'`, "install_upgrade.escript\" \\"} {
			if strings.Contains(s, gone) {
				t.Errorf("%s still has %q", bin, gone)
			}
		}
		for _, keep := range []string{`COOKIE="$(cat "$DEFAULT_COOKIE_FILE")"`, "$nodetool_id -dist_listen false\" \\", `-e)`} {
			if !strings.Contains(s, keep) {
				t.Errorf("%s lost %q", bin, keep)
			}
		}
		if strings.Count(s, "\n             exit 1\n") != 2 {
			t.Errorf("%s: install/upgrade and versions should end in exit 1:\n%s", bin, s)
		}
		if n, m := strings.Count(s, "\n"), strings.Count(relxBinFixture, "\n"); n != m {
			t.Errorf("%s has %d lines, want %d", bin, n, m)
		}
	}
	if read(t, r, "bin/hooks/builtin/wait_for_vm_start") != waitForVMFixture {
		t.Error("a hook without the cookie was rewritten")
	}
}

// lineOf is the 1-based number of the first line of s that contains sub.
func lineOf(s, sub string) int {
	for i, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return i + 1
		}
	}
	return -1
}
