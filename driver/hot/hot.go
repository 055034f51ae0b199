// Package hot drives OTP's release_handler on a live node: the steps of a
// relup hot upgrade, each one call over the control channel.
//
// The sequence is the one OTP documents, with the release unpacked by the
// driver rather than by release_handler:
//
//  1. Unpacked: release_handler:set_unpacked/2 registers the files the
//     driver put into the node's release root (safely, with limits).
//  2. MergeRuntimeConfig: for an Elixir release with runtime.exs, the new
//     sys.config gets the runtime configuration merged in, evaluated on the
//     node itself. Without it install_release resets every runtime-only key
//     to the .app defaults.
//  3. CheckInstall: release_handler:check_install_release/1.
//  4. Install: release_handler:install_release/2. Past relup's
//     point_of_no_return a failure makes release_handler restart the node's
//     applications into the permanent (old) release.
//  5. Healthy: the new release is current and its applications run.
//  6. MakePermanent: the version survives a restart of the node.
//
// Every call returns a flat printable string, so that erl_call's and a TLS
// client VM's printing of the result read the same.
package hot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"
)

// Evaler evaluates Erlang expressions on the node; control.Client is one.
type Evaler interface {
	Eval(ctx context.Context, expr string) (string, error)
}

// Node is a live node whose release root is Root.
type Node struct {
	Eval Evaler
	// Root is the release root on the node's host.
	Root string
	// CallTimeout bounds each release_handler call on the node, which has
	// no timeout of its own. Zero means a minute.
	CallTimeout time.Duration
}

// Release is one release that release_handler knows.
type Release struct {
	Version string
	// Status is permanent, current, old or unpacked.
	Status string
}

// InstallError is a failed install_release.
type InstallError struct {
	Version string
	Reason  string
	// Restarted is true when release_handler restarted the node's
	// applications into the permanent release (a failure past relup's
	// point_of_no_return, such as code_change_failed).
	Restarted bool
}

func (e *InstallError) Error() string {
	if e.Restarted {
		return fmt.Sprintf("install_release(%q) failed past the point of no return: %s", e.Version, e.Reason)
	}
	return fmt.Sprintf("install_release(%q) failed: %s", e.Version, e.Reason)
}

// CallError is an error that release_handler (or the node) answered, as
// opposed to a call that did not reach the node.
type CallError struct{ Reason string }

func (e *CallError) Error() string { return e.Reason }

// text is an Erlang fun that flattens any term into one line of printable
// ASCII without quotes or backslashes, so that any printer passes it
// through unchanged. Strings lose their quotes: "0.2.0" reads 0.2.0.
const text = `Txt = fun(T) -> S = lists:flatten(io_lib:format("~tp", [T])), ` +
	`string:join(string:lexemes([if C =:= $\\ -> $/; C >= 32, C < 127 -> C; true -> $\s end || C <- S, C =/= $"], " "), " ") end`

// call evaluates body, an expression whose value is {ok, Term} or
// {error, Term}, and returns the text of Term.
func (n *Node) call(ctx context.Context, body string) (string, error) {
	tmo := n.CallTimeout
	if tmo <= 0 {
		tmo = time.Minute
	}
	// Run the body in a process of its own, so that a slow step is cut
	// off on the node as well, not only in erl_call.
	expr := text + `, Self = self(), Ref = make_ref(), ` +
		`{Pid, MRef} = spawn_monitor(fun() -> Self ! {Ref, try begin ` + body + ` end catch Class__:Reason__ -> {error, {Class__, Reason__}} end} end), ` +
		`receive {Ref, {ok, V}} -> erlang:demonitor(MRef, [flush]), "ok " ++ Txt(V); ` +
		`{Ref, {error, E}} -> erlang:demonitor(MRef, [flush]), "error " ++ Txt(E); ` +
		`{Ref, Other} -> erlang:demonitor(MRef, [flush]), "error " ++ Txt({unexpected, Other}); ` +
		`{'DOWN', MRef, _, _, Why} -> "error " ++ Txt({down, Why}) ` +
		`after ` + strconv.FormatInt(tmo.Milliseconds(), 10) + ` -> exit(Pid, kill), "error timeout" end`
	out, err := n.Eval.Eval(ctx, expr)
	if err != nil {
		return "", err
	}
	out = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(out), `"`), `"`)
	if v, ok := strings.CutPrefix(out, "ok "); ok {
		return v, nil
	}
	if v, ok := strings.CutPrefix(out, "error "); ok {
		if len(v) > 500 {
			v = v[:500] + " ..."
		}
		return "", &CallError{Reason: v}
	}
	return "", fmt.Errorf("unexpected answer %q", out)
}

// quote returns s as an Erlang string literal.
func quote(s string) string { return eterm.Format(eterm.String(s)) }

// Releases returns the releases release_handler knows, and the current one.
func (n *Node) Releases(ctx context.Context) (current string, rels []Release, err error) {
	out, err := n.call(ctx, `{ok, [{V, S} || {_, V, _, S} <- release_handler:which_releases()] ++ `+
		`[{current, V} || {_, V, _, _} <- release_handler:which_releases(current)]}`)
	if err != nil {
		return "", nil, fmt.Errorf("which_releases: %w", err)
	}
	// [{0.2.0,current},{0.1.0,permanent},{current,0.2.0}], strings shown
	// without their quotes.
	out = strings.ReplaceAll(out, " ", "") // the printer may wrap lines
	for _, item := range strings.Split(strings.Trim(out, "[]"), "},{") {
		a, b, ok := strings.Cut(strings.Trim(item, "{} "), ",")
		if !ok {
			continue
		}
		a, b = strings.TrimSpace(a), strings.TrimSpace(b)
		if a == "current" {
			current = b
			continue
		}
		rels = append(rels, Release{Version: a, Status: b})
	}
	if current == "" {
		for _, r := range rels {
			if r.Status == "permanent" {
				current = r.Version
			}
		}
	}
	return current, rels, nil
}

// Unpacked registers the release whose .rel file is relFile (under Root)
// as unpacked. A release already registered is not an error.
func (n *Node) Unpacked(ctx context.Context, relFile string) (string, error) {
	v, err := n.call(ctx, `case release_handler:set_unpacked(`+quote(relFile)+`, []) of `+
		`{ok, V} -> {ok, V}; {error, {existing_release, V}} -> {ok, V}; {error, E} -> {error, E} end`)
	if err != nil {
		return "", fmt.Errorf("set_unpacked: %w", err)
	}
	return v, nil
}

// MergeRuntimeConfig evaluates the config providers (runtime.exs) that an
// Elixir release's new sys.config names, on the node, and writes their
// result into that sys.config. It reports whether there was anything to
// merge; releases without providers are left alone.
func (n *Node) MergeRuntimeConfig(ctx context.Context, version string) (bool, error) {
	sys := n.Root + "/releases/" + version + "/sys.config"
	out, err := n.call(ctx, `Sys = `+quote(sys)+`, `+
		`{ok, [Cfg]} = file:consult(Sys), `+
		`case proplists:get_value(config_provider_init, proplists:get_value(elixir, Cfg, [])) of `+
		`#{providers := Ps} when Ps =/= [] -> `+
		`New = lists:foldl(fun({M, S}, Acc) -> M:load(Acc, S) end, Cfg, Ps), `+
		`{ok, Bin} = file:read_file(Sys), `+
		`Head = [[L, $\n] || L <- string:split(Bin, "\n", all), string:prefix(L, "%%") =/= nomatch], `+
		`Tmp = Sys ++ ".tmp", `+
		`ok = file:write_file(Tmp, [Head, io_lib:format("~tp.~n", [New])]), `+
		`ok = file:rename(Tmp, Sys), {ok, merged}; `+
		`_ -> {ok, none} end`)
	if err != nil {
		return false, fmt.Errorf("merge runtime config into releases/%s/sys.config: %w", version, err)
	}
	return out == "merged", nil
}

// CheckInstall runs check_install_release and returns the version it would
// upgrade from.
func (n *Node) CheckInstall(ctx context.Context, version string) (string, error) {
	from, err := n.call(ctx, `case release_handler:check_install_release(`+quote(version)+`) of `+
		`{ok, From, _} -> {ok, From}; {error, E} -> {error, E} end`)
	if err != nil {
		return "", fmt.Errorf("check_install_release: %w", oldProcesses(err))
	}
	return from, nil
}

// oldProcesses explains release_handler's {old_processes, Mod}: a
// soft_purge PrePurge found processes that still run the old code of Mod,
// which an earlier upgrade's soft PostPurge left loaded.
func oldProcesses(err error) error {
	var ce *CallError
	if !errors.As(err, &ce) {
		return err
	}
	mod, ok := strings.CutPrefix(ce.Reason, "{old_processes,")
	if !ok {
		return err
	}
	mod = strings.TrimSuffix(mod, "}")
	return &CallError{Reason: fmt.Sprintf("%s (processes still run the old code of %s, which an earlier upgrade's "+
		"soft_purge kept; nothing changed: restart those processes, or ship with a full deploy)", ce.Reason, mod)}
}

// Install runs install_release with update_paths and returns the version
// it upgraded from. A failure is an *InstallError.
func (n *Node) Install(ctx context.Context, version string) (string, error) {
	// A code_change crash carries a stack trace; an operator needs the
	// module and the reason.
	from, err := n.call(ctx, `case release_handler:install_release(`+quote(version)+`, [{update_paths, true}]) of `+
		`{ok, From, _} -> {ok, From}; `+
		`{error, {code_change_failed, _, Mod, _, {'EXIT', {#{'__exception__' := true} = X, _}}}} -> `+
		`{error, {code_change_failed, Mod, 'Elixir.Exception':message(X)}}; `+
		`{error, {code_change_failed, _, Mod, _, {'EXIT', {Why, _}}}} -> {error, {code_change_failed, Mod, Why}}; `+
		`{error, {code_change_failed, _, Mod, _, Why}} -> {error, {code_change_failed, Mod, Why}}; `+
		`{error, E} -> {error, E} end`)
	if err == nil {
		return from, nil
	}
	// release_handler restarts the node into the permanent release on
	// code_change_failed and on any other failure after the point of no
	// return; the call may then lose its node as well. Only an answer that
	// names a failure before that point leaves the node as it was.
	var ce *CallError
	restarted := !errors.As(err, &ce) || strings.Contains(ce.Reason, "code_change_failed") ||
		strings.HasPrefix(ce.Reason, "{down,") || ce.Reason == "timeout"
	return "", &InstallError{Version: version, Reason: err.Error(), Restarted: restarted}
}

// InitStatus returns init:get_status() as text: {started,started} once the
// node has booted.
func (n *Node) InitStatus(ctx context.Context) (string, error) {
	return n.call(ctx, `{ok, init:get_status()}`)
}

// Status returns, in one call, init:get_status() as text and the names of
// the applications running: what a health check needs, for the price of
// one call (a whole client VM under TLS distribution).
func (n *Node) Status(ctx context.Context) (string, []string, error) {
	out, err := n.call(ctx, `{ok, {init:get_status(), [A || {A, _, _} <- application:which_applications()]}}`)
	if err != nil {
		return "", nil, err
	}
	// {{started,started},[kernel,stdlib,...]}
	out = strings.ReplaceAll(out, " ", "")
	status, apps, ok := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(out, "{"), "}"), "},[")
	if !ok {
		return "", nil, fmt.Errorf("unexpected status %q", out)
	}
	var names []string
	for _, a := range strings.Split(strings.TrimSuffix(apps, "]"), ",") {
		if a != "" {
			names = append(names, a)
		}
	}
	return status + "}", names, nil
}

// WaitStarted waits until the node's init has started every application:
// after a restart into the old release, the node serves again.
func (n *Node) WaitStarted(ctx context.Context) error {
	var last error
	for {
		out, err := n.InitStatus(ctx)
		if err == nil && out == "{started,started}" {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("init status %s", out)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node did not come back: %w", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Healthy checks that version is the node's current release and that every
// application in apps is running.
func (n *Node) Healthy(ctx context.Context, version string, apps []string) error {
	current, _, err := n.Releases(ctx)
	if err != nil {
		return err
	}
	if current != version {
		return fmt.Errorf("current release is %s, not %s", current, version)
	}
	running, err := n.RunningApps(ctx)
	if err != nil {
		return err
	}
	if missing := Missing(apps, running); len(missing) > 0 {
		return fmt.Errorf("applications not running: %s", strings.Join(missing, ", "))
	}
	return nil
}

// Missing returns the applications of want that are not in running.
func Missing(want, running []string) []string {
	var out []string
	for _, a := range want {
		if !slices.Contains(running, a) {
			out = append(out, a)
		}
	}
	return out
}

// RunningApps returns the names of the applications running on the node.
func (n *Node) RunningApps(ctx context.Context) ([]string, error) {
	out, err := n.call(ctx, `{ok, [A || {A, _, _} <- application:which_applications()]}`)
	if err != nil {
		return nil, fmt.Errorf("which_applications: %w", err)
	}
	var apps []string
	for _, a := range strings.Split(strings.Trim(out, "[]"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			apps = append(apps, a)
		}
	}
	return apps, nil
}

// OldCode returns the modules whose old code is still loaded because some
// process runs it: a soft_purge after an upgrade kept it, and the next
// upgrade that changes such a module is refused until those processes
// leave the old code.
func (n *Node) OldCode(ctx context.Context) ([]string, error) {
	out, err := n.call(ctx, `{ok, lists:sort([M || {M, _} <- code:all_loaded(), erlang:check_old_code(M)])}`)
	if err != nil {
		return nil, fmt.Errorf("old code: %w", err)
	}
	var mods []string
	for _, m := range strings.Split(strings.Trim(out, "[]"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			mods = append(mods, m)
		}
	}
	return mods, nil
}

// MakePermanent makes version the one the node boots.
func (n *Node) MakePermanent(ctx context.Context, version string) error {
	if _, err := n.call(ctx, `case release_handler:make_permanent(`+quote(version)+`) of `+
		`ok -> {ok, ok}; {error, E} -> {error, E} end`); err != nil {
		return fmt.Errorf("make_permanent: %w", err)
	}
	return nil
}

// Remove deletes an unpacked or old release from the node and its disk.
func (n *Node) Remove(ctx context.Context, version string) error {
	if _, err := n.call(ctx, `case release_handler:remove_release(`+quote(version)+`) of `+
		`ok -> {ok, ok}; {error, E} -> {error, E} end`); err != nil {
		return fmt.Errorf("remove_release: %w", err)
	}
	return nil
}
