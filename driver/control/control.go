// Package control is the driver's channel into a running node: it
// evaluates an Erlang expression on the node and returns the result.
//
// It uses erl_call from the release's own erts. That is deliberate:
//   - it needs no Erlang on the host, because mix and relx releases bundle
//     their erts, erl_call included (OTP 23+);
//   - a call costs milliseconds, where a client VM costs about half a
//     second;
//   - erl_call reads the cookie from $HOME/.erlang.cookie when it is given
//     none, so the driver points HOME at the task's private home and the
//     cookie never appears on erl_call's command line;
//   - it finds the node through ERL_EPMD_PORT, the driver's port mapper,
//     like every other client.
//
// erl_call cannot speak TLS distribution. Under mTLS the client is instead
// a short-lived hidden VM from the same erts, started with the node's own
// ssl_dist_optfile and -dist_listen false: about half a second a call.
package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Client calls into one node.
type Client struct {
	// ERLCall is the path of erl_call.
	ERLCall string
	// Node is the node's full name, name@host.
	Node string
	// Address, HOST:PORT, makes erl_call dial the node there instead of
	// looking Node up: a call made inside a bridge-mode group reaches the
	// node on the namespace's loopback, at the port it listens on inside.
	Address string
	// Env is erl_call's environment: HOME with the cookie, ERL_EPMD_PORT.
	Env []string
	// Dir is the working directory of calls, where a client VM that
	// crashes writes its dump.
	Dir string
	// Timeout bounds each call. Zero means 10 s.
	Timeout time.Duration
	// ERL and SSLDistOptFile, when both set, make calls through a client
	// VM that speaks TLS distribution instead of erl_call. VMArgs boot it:
	// the release's start_clean boot and code path, where ssl lives.
	ERL            string
	SSLDistOptFile string
	VMArgs         []string
	// Run runs each call's program. The driver runs it inside the task,
	// through the executor; nil runs it here, as a child of the caller.
	Run Runner
}

// Runner runs argv with env in dir, feeds it stdin, and returns what it
// wrote and its exit code. It must end the program, and everything the
// program started, once ctx is done.
type Runner func(ctx context.Context, argv, env []string, dir string, stdin []byte) (stdout, stderr []byte, code int, err error)

// Error is a call that did not return a result.
type Error struct {
	Node, Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("call into %s: %s", e.Node, e.Reason) }

// Eval evaluates expr (Erlang expressions, ending with a full stop or not)
// on the node and returns the printed result term.
func (c *Client) Eval(ctx context.Context, expr string) (string, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+2*time.Second)
	defer cancel()
	secs := int((timeout + time.Second - 1) / time.Second)
	expr = strings.TrimSpace(expr)
	if !strings.HasSuffix(expr, ".") {
		expr += "."
	}
	var (
		argv  []string
		stdin []byte
	)
	if c.ERL != "" && c.SSLDistOptFile != "" {
		argv = append([]string{c.ERL}, c.vmArgs(expr, timeout)...)
	} else {
		target := []string{"-name", c.Node}
		if c.Address != "" {
			target = []string{"-address", c.Address}
		}
		argv = append(append([]string{c.ERLCall, "-R"}, target...), "-timeout", strconv.Itoa(secs), "-e")
		stdin = []byte(expr + "\n")
	}
	run := c.Run
	if run == nil {
		run = Local
	}
	out, errb, code, err := run(ctx, argv, c.Env, c.Dir, stdin)
	result := strings.TrimSpace(string(out))
	switch {
	case ctx.Err() != nil:
		return "", &Error{c.Node, fmt.Sprintf("no answer within %s", timeout)}
	case err != nil:
		return "", &Error{c.Node, err.Error()}
	case code != 0:
		msg := strings.TrimSpace(string(errb) + " " + result)
		if msg == "" {
			msg = fmt.Sprintf("exit code %d", code)
		}
		return "", &Error{c.Node, msg}
	case strings.HasPrefix(result, "{ok, ") && strings.HasSuffix(result, "}"):
		// erl_call -e answers {ok, Result}.
		return strings.TrimSuffix(strings.TrimPrefix(result, "{ok, "), "}"), nil
	case strings.HasPrefix(result, "{badrpc,"), strings.HasPrefix(result, "{error,"):
		return "", &Error{c.Node, result}
	}
	return result, nil
}

// Local is the Runner that runs the program as a child of the caller, in a
// process group of its own that is killed whole at the deadline, with no
// wait past it for output that a leftover child holds open.
func Local(ctx context.Context, argv, env []string, dir string, stdin []byte) ([]byte, []byte, int, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = dir
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.Bytes(), errb.Bytes(), ee.ExitCode(), nil
	}
	return out.Bytes(), errb.Bytes(), 0, err
}

// vmArgs starts a hidden client VM that evaluates expr on the node over TLS
// distribution and prints {ok, Result} like erl_call does.
func (c *Client) vmArgs(expr string, timeout time.Duration) []string {
	_, host, _ := strings.Cut(c.Node, "@")
	self := fmt.Sprintf("ctl%d-%d@%s", time.Now().UnixNano()%1_000_000, rand.IntN(1_000_000), host)
	prog := fmt.Sprintf(`{ok, T, _} = erl_scan:string(%s), {ok, Es} = erl_parse:parse_exprs(T), `+
		`case rpc:call('%s', erl_eval, exprs, [Es, []], %d) of `+
		`{value, V, _} -> io:format("{ok, ~p}~n", [V]), halt(0); `+
		`Other -> io:format("~p~n", [Other]), halt(1) end.`,
		strconv.Quote(expr), c.Node, timeout.Milliseconds())
	return append(append([]string(nil), c.VMArgs...), "-hidden", "-noshell", "-noinput", "-name", self,
		"-start_epmd", "false", "-dist_listen", "false",
		"-proto_dist", "inet_tls", "-ssl_dist_optfile", c.SSLDistOptFile,
		"-eval", prog)
}
