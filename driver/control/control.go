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
// erl_call cannot speak TLS distribution; nodes with mTLS need a client VM
// started with the same TLS options (not yet provided here).
package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Client calls into one node.
type Client struct {
	// ERLCall is the path of erl_call.
	ERLCall string
	// Node is the node's full name, name@host.
	Node string
	// Env is erl_call's environment: HOME with the cookie, ERL_EPMD_PORT.
	Env []string
	// Timeout bounds each call. Zero means 10 s.
	Timeout time.Duration
}

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
	cmd := exec.CommandContext(ctx, c.ERLCall, "-R", "-name", c.Node, "-timeout", strconv.Itoa(secs), "-e")
	cmd.Env = c.Env
	expr = strings.TrimSpace(expr)
	if !strings.HasSuffix(expr, ".") {
		expr += "."
	}
	cmd.Stdin = strings.NewReader(expr + "\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	result := strings.TrimSpace(out.String())
	switch {
	case ctx.Err() != nil:
		return "", &Error{c.Node, fmt.Sprintf("no answer within %s", timeout)}
	case err != nil:
		msg := strings.TrimSpace(errb.String() + " " + result)
		var ee *exec.ExitError
		if errors.As(err, &ee) && msg != "" {
			return "", &Error{c.Node, msg}
		}
		return "", &Error{c.Node, err.Error()}
	case strings.HasPrefix(result, "{ok, ") && strings.HasSuffix(result, "}"):
		// erl_call -e answers {ok, Result}.
		return strings.TrimSuffix(strings.TrimPrefix(result, "{ok, "), "}"), nil
	case strings.HasPrefix(result, "{badrpc,"), strings.HasPrefix(result, "{error,"):
		return "", &Error{c.Node, result}
	}
	return result, nil
}
