package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	nomad "github.com/hashicorp/nomad/api"
	"golang.org/x/term"

	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
)

const shellHelp = `Usage: beamctl shell [options]

  Opens a remote shell on one allocation's BEAM node, through Nomad's
  exec (the path nomad alloc exec takes): IEx for an Elixir release, the
  Erlang shell for a rebar3 one. The shell joins the running node with the
  task's own cookie, which never leaves the allocation. With -e, it
  evaluates one expression on the node instead and prints the result.

Example:

  beamctl shell -job hello
  beamctl shell -job hello -alloc 0b0e7a4c -e 'Application.started_applications()'

Options:
`

func runShell(args []string, stdout, stderr io.Writer) int {
	var f jobFlags
	var alloc, expr string
	fs := newFlags("shell", shellHelp, stderr)
	f.register(fs)
	fs.StringVar(&alloc, "alloc", "", "the allocation, by ID or ID prefix (default: the job's first)")
	fs.StringVar(&expr, "e", "", "evaluate this expression on the node and print the result")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if f.job == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "beamctl shell: missing -job; see beamctl shell -help")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	c, err := f.cluster(ctx)
	if err != nil {
		fail(stderr, "shell", err)
		return exitCluster
	}
	a, err := pickAlloc(ctx, c, alloc)
	if err != nil {
		fail(stderr, "shell", err)
		return exitCluster
	}
	ts := a.TaskStates[c.Task]
	cmd, err := rollout.Release(ts).Command(expr)
	if err != nil {
		fail(stderr, "shell", err)
		return exitFailed
	}

	tty := false
	if expr == "" && term.IsTerminal(int(os.Stdin.Fd())) {
		old, err := term.MakeRaw(int(os.Stdin.Fd()))
		if err == nil {
			tty = true
			defer func() { _ = term.Restore(int(os.Stdin.Fd()), old) }()
		}
	}
	var stdin io.Reader = os.Stdin
	if expr != "" {
		stdin = strings.NewReader("")
	}
	code, err := c.Nomad.Allocations().Exec(ctx, a, c.Task, tty, cmd, stdin, stdout, stderr, nil,
		(&nomad.QueryOptions{Namespace: c.Namespace}).WithContext(ctx))
	if err != nil {
		fmt.Fprintf(stderr, "beamctl shell: exec in %s: %v\n", a.ID, err)
		return exitCluster
	}
	if code != 0 {
		return exitFailed
	}
	return exitOK
}

// pickAlloc returns the running allocation whose ID starts with prefix, or
// the job's first running one.
func pickAlloc(ctx context.Context, c *rollout.Nomad, prefix string) (*nomad.Allocation, error) {
	allocs, err := c.Allocs(ctx)
	if err != nil {
		return nil, err
	}
	var found []rollout.Alloc
	for _, a := range allocs {
		if strings.HasPrefix(a.ID, prefix) {
			found = append(found, a)
		}
	}
	switch {
	case len(found) == 0 && prefix != "":
		return nil, fmt.Errorf("no running allocation of %s starts with %q", c.Job, prefix)
	case len(found) == 0:
		return nil, fmt.Errorf("job %s has no running allocation", c.Job)
	case len(found) > 1 && prefix != "":
		return nil, fmt.Errorf("%d running allocations start with %q; give more of the ID", len(found), prefix)
	}
	first := found[0]
	for _, a := range found {
		if a.Index < first.Index {
			first = a
		}
	}
	a, _, err := c.Nomad.Allocations().Info(first.ID, (&nomad.QueryOptions{Namespace: c.Namespace}).WithContext(ctx))
	return a, err
}
