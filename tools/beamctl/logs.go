package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
)

const logsHelp = `Usage: beamctl logs [options]

  Prints the logs of one or all allocations of a job's beam task, each
  line prefixed with its BEAM node's name, and with -f follows them.

Example:

  beamctl logs -job hello -f
  beamctl logs -job hello -alloc 0b0e7a4c -stderr

Options:
`

func runLogs(args []string, stdout, stderr io.Writer) int {
	var f jobFlags
	var alloc string
	var follow, errLog bool
	fs := newFlags("logs", logsHelp, stderr)
	f.register(fs)
	fs.StringVar(&alloc, "alloc", "", "only this allocation, by ID or ID prefix (default: all running ones)")
	fs.BoolVar(&follow, "f", false, "follow the logs")
	fs.BoolVar(&errLog, "stderr", false, "the task's stderr instead of its stdout")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if f.job == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "beamctl logs: missing -job; see beamctl logs -help")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := f.cluster(ctx)
	if err != nil {
		fail(stderr, "logs", err)
		return exitCluster
	}
	allocs, err := c.Allocs(ctx)
	if err != nil {
		fail(stderr, "logs", err)
		return exitCluster
	}
	kind := "stdout"
	if errLog {
		kind = "stderr"
	}
	out := &lineWriter{w: stdout}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	n := 0
	for _, a := range allocs {
		if !strings.HasPrefix(a.ID, alloc) {
			continue
		}
		n++
		wg.Add(1)
		go func(a rollout.Alloc) {
			defer wg.Done()
			if err := streamLogs(ctx, c, a, kind, follow, out); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(a)
	}
	if n == 0 {
		fmt.Fprintf(stderr, "beamctl logs: no running allocation of %s matches %q\n", f.job, alloc)
		return exitFailed
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil && ctx.Err() == nil {
		fail(stderr, "logs", err)
		return exitCluster
	}
	return exitOK
}

// streamLogs copies one allocation's log to out, a line at a time, each
// prefixed with the node's name.
func streamLogs(ctx context.Context, c *rollout.Nomad, a rollout.Alloc, kind string, follow bool, out *lineWriter) error {
	q := (&nomad.QueryOptions{Namespace: c.Namespace}).WithContext(ctx)
	info, _, err := c.Nomad.Allocations().Info(a.ID, q)
	if err != nil {
		return err
	}
	prefix := rollout.Release(info.TaskStates[c.Task]).Node
	if prefix == "" {
		prefix = a.Name
	}
	frames, errc := c.Nomad.AllocFS().Logs(info, follow, c.Task, kind, "start", 0, ctx.Done(), q)
	var partial []byte
	for {
		select {
		case fr, ok := <-frames:
			if !ok {
				if len(partial) > 0 {
					out.line(prefix, partial)
				}
				return nil
			}
			if fr == nil {
				continue
			}
			partial = append(partial, fr.Data...)
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				out.line(prefix, partial[:i])
				partial = partial[i+1:]
			}
		case err := <-errc:
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("logs of %s: %w", a.ID, err)
			}
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

// lineWriter writes whole lines from several goroutines.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) line(prefix string, b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, "[%s] %s\n", prefix, bytes.TrimRight(b, "\r"))
}
