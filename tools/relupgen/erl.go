package relupgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/appup"
)

// Runtime is an Erlang that can run systools for a release.
type Runtime struct {
	// Desc says which Erlang it is, for the user.
	Desc string

	path string   // erlexec, or a host erl
	env  []string // the environment erlexec needs
	args []string // the boot arguments before the program's
	// dir is the working directory, private to this run: start_clean
	// boot files evaluate a .erlang file from the working directory and
	// HOME, which must not be one another user can write to.
	dir string
}

// erlTimeout bounds each run of Erlang.
const erlTimeout = 2 * time.Minute

// bundled returns the runtime of the release in root: its own ERTS,
// booted with its own start_clean boot file, with work (a private
// directory) as its working directory and HOME.
func bundled(root, relVsn, erts, sasl, work string) *Runtime {
	bin := filepath.Join(root, "erts-"+erts, "bin")
	return &Runtime{
		Desc: fmt.Sprintf("ERTS %s bundled in the release", erts),
		path: filepath.Join(bin, "erlexec"),
		dir:  work,
		env:  []string{"ROOTDIR=" + root, "BINDIR=" + bin, "EMU=beam", "PROGNAME=erl", "HOME=" + work},
		args: []string{
			"-boot", filepath.Join(root, "releases", relVsn, "start_clean"),
			// mix boot files use $RELEASE_LIB; relx ones use $ROOT.
			"-boot_var", "RELEASE_LIB", filepath.Join(root, "lib"),
			"-pa", filepath.Join(root, "lib", "sasl-"+sasl, "ebin"),
		},
	}
}

// host returns the Erlang named erl (a path, or a name looked up in PATH),
// if its emulator belongs to the same OTP release as erts. It runs in
// work, a private directory, with the user's environment.
func host(ctx context.Context, erl, erts, work string) (*Runtime, error) {
	path, err := exec.LookPath(erl)
	if err != nil {
		return nil, fmt.Errorf("no Erlang found as %q on this machine: %w", erl, err)
	}
	r := &Runtime{path: path, env: os.Environ(), dir: work}
	out, err := r.eval(ctx, `io:format("~s ~s", [erlang:system_info(version), erlang:system_info(otp_release)])`)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return nil, fmt.Errorf("%s: unexpected version output", path)
	}
	want, got := otpMajor(erts), otpMajor(f[0])
	if want == 0 || got != want {
		return nil, fmt.Errorf("%s is OTP %s (ERTS %s), but the release needs OTP %d (ERTS %s): "+
			"put that OTP's erl first in PATH, or pass -erl PATH", path, f[1], f[0], want, erts)
	}
	r.Desc = fmt.Sprintf("host Erlang %s (OTP %s, ERTS %s)", path, f[1], f[0])
	return r, nil
}

// otpMajor returns the OTP release an ERTS version belongs to, or 0.
func otpMajor(erts string) int {
	parts := strings.SplitN(erts, ".", 3)
	major, err := strconv.Atoi(parts[0])
	if err != nil {
		return 0
	}
	minor := 0
	if len(parts) > 1 {
		minor, _ = strconv.Atoi(parts[1])
	}
	switch {
	case major >= 11:
		return major + 12 // ERTS 11 is OTP 23, 16 is OTP 28
	case major == 10 && minor >= 4:
		return 22
	case major == 10:
		return 21
	case major == 9:
		return 20
	}
	return 0
}

// eval runs expr, an Erlang expression sequence, and returns its output.
func (r *Runtime) eval(ctx context.Context, expr string, extra ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, erlTimeout)
	defer cancel()
	args := append(append([]string{}, r.args...), "-noshell", "-noinput", "-eval", expr+", halt().")
	if len(extra) > 0 {
		args = append(append(args, "-extra"), extra...)
	}
	cmd := exec.CommandContext(ctx, r.path, args...)
	cmd.Env, cmd.Dir = r.env, r.dir
	// A child the VM leaves holding the output does not keep us waiting.
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return "", fmt.Errorf("the Erlang VM did not finish within %s", erlTimeout)
	}
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, printable(lastLines(out.String(), 8)))
	}
	return out.String(), nil
}

// makeRelupExpr calls systools:make_relup with the arguments in the term
// file named by the first plain argument, and writes the outcome to the
// second: {ok, Warnings} or {error, Text}.
const makeRelupExpr = `[In, Res] = init:get_plain_arguments(),
{ok, [{New, Olds, Path, Out}]} = file:consult(In),
R = try systools:make_relup(New, Olds, Olds, [{path, Path}, {outdir, Out}, silent]) of
      {ok, _, WMod, Ws} -> {ok, [lists:flatten(WMod:format_warning(W)) || W <- Ws]};
      {error, EMod, E} -> {error, lists:flatten(EMod:format_error(E))};
      Other -> {error, lists:flatten(io_lib:format("~p", [Other]))}
    catch C:Why -> {error, lists:flatten(io_lib:format("~p:~p", [C, Why]))}
    end,
ok = file:write_file(Res, io_lib:format("~p.~n", [R]))`

// makeRelup runs systools:make_relup for newRel (a .rel path without the
// extension) from each of oldRels, with path the ebin directories of every
// release, and writes outDir/relup. It returns systools' warnings.
func (r *Runtime) makeRelup(ctx context.Context, work, newRel string, oldRels, path []string, outDir string) ([]string, error) {
	strs := func(l []string) eterm.List {
		out := eterm.List{}
		for _, s := range l {
			out = append(out, eterm.String(s))
		}
		return out
	}
	in := filepath.Join(work, "make_relup.args")
	res := filepath.Join(work, "make_relup.result")
	args := eterm.Tuple{eterm.String(newRel), strs(oldRels), strs(path), eterm.String(outDir)}
	if err := os.WriteFile(in, []byte(eterm.Format(args)+".\n"), 0o600); err != nil {
		return nil, err
	}
	if _, err := r.eval(ctx, makeRelupExpr, in, res); err != nil {
		return nil, fmt.Errorf("systools:make_relup: %w", err)
	}
	data, err := os.ReadFile(res)
	if err != nil {
		return nil, fmt.Errorf("systools:make_relup wrote no result: %w", err)
	}
	terms, err := eterm.Parse(data)
	if err != nil || len(terms) != 1 {
		return nil, fmt.Errorf("systools:make_relup: unreadable result")
	}
	t, ok := terms[0].(eterm.Tuple)
	if !ok || len(t) != 2 {
		return nil, fmt.Errorf("systools:make_relup: unreadable result")
	}
	switch t[0] {
	case eterm.Atom("error"):
		msg, _ := eterm.AsString(t[1])
		return nil, fmt.Errorf("systools:make_relup: %s", printable(msg))
	case eterm.Atom("ok"):
		l, _ := eterm.AsList(t[1])
		var warnings []string
		for _, w := range l {
			s, _ := eterm.AsString(w)
			warnings = append(warnings, printable(strings.TrimSpace(s)))
		}
		return warnings, nil
	}
	return nil, errors.New("systools:make_relup: unreadable result")
}

func printable(s string) string { return appup.Printable(s) }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
