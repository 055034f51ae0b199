package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/launch"
)

// taskLogs opens the task's stdout and stderr for the driver's own writes,
// so that pre-command output lands in `nomad alloc logs` before the node's.
// The writers must stay open until the executor has opened the same FIFOs:
// logmon stops reading at the first end-of-file.
type taskLogs struct {
	stdout, stderr io.WriteCloser
	// stdoutPath and stderrPath are what the executor opens: the FIFOs
	// the driver has open and checked, by /proc/PID/fd/N, which no task
	// can swap for a link, unlike their names in alloc/logs.
	stdoutPath, stderrPath string
}

func openTaskLogs(cfg *drivers.TaskConfig) (*taskLogs, error) {
	if cfg.StdoutPath == "" || cfg.StderrPath == "" {
		return &taskLogs{stdout: nopCloser{io.Discard}, stderr: nopCloser{io.Discard},
			stdoutPath: cfg.StdoutPath, stderrPath: cfg.StderrPath}, nil
	}
	out, err := openFIFO(cfg, cfg.StdoutPath)
	if err != nil {
		return nil, fmt.Errorf("open task stdout: %w", err)
	}
	errw, err := openFIFO(cfg, cfg.StderrPath)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("open task stderr: %w", err)
	}
	return &taskLogs{stdout: out, stderr: errw, stdoutPath: fdPath(out), stderrPath: fdPath(errw)}, nil
}

// fdPath names an open file of this process so that another process (the
// executor, as root) opens the very same file.
func fdPath(f *os.File) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
}

// openFIFO opens one of the FIFOs that Nomad's log collector reads, for
// writing. They live in the allocation's alloc/logs, which every task of
// the allocation can write: the path is resolved inside the allocation
// directory, the last name is not followed, and it must be a FIFO, or the
// driver (root) would write into whatever file a task linked there. The
// executor opens the same paths when it starts the node; the check here
// comes first. O_NONBLOCK: a FIFO that no one reads (one the task made)
// fails at once instead of holding the start forever.
func openFIFO(cfg *drivers.TaskConfig, p string) (*os.File, error) {
	rel, err := filepath.Rel(cfg.AllocDir, p)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("%s is not in the allocation directory", p)
	}
	root, err := os.OpenRoot(cfg.AllocDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.OpenFile(rel, os.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (not the FIFO Nomad made; the node is not started)", rel, why(err))
	}
	// Nomad's log collector makes them, as root: a task cannot make one
	// with that owner.
	fi, err := f.Stat()
	if err == nil {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Type() != fs.ModeNamedPipe || !ok || int(st.Uid) != os.Geteuid() {
			err = fmt.Errorf("%s is not the FIFO Nomad made; the node is not started", rel)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (l *taskLogs) Close() {
	l.stdout.Close()
	l.stderr.Close()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// runPreCommands runs the task's pre-commands in order against the unpacked
// release, each with the task's environment and a timeout. The first that
// fails stops the start, with a task event that names it, its exit code
// and the end of its output.
func (d *Driver) runPreCommands(ctx context.Context, cfg *drivers.TaskConfig, tc *TaskConfig, p *prepared, logs *taskLogs) error {
	timeout := tc.preCommandTimeout()
	for i, argv := range tc.PreCommands {
		desc := fmt.Sprintf("pre-command %d/%d (%s)", i+1, len(tc.PreCommands), clip(strings.Join(argv, " "), 80))
		path, args, err := launch.PreCommand(p.release, argv)
		if err != nil {
			return d.fail(cfg, "%s: %v", desc, err)
		}
		tail := &tailWriter{max: 4096}
		fmt.Fprintf(logs.stdout, "==> beam driver: running %s\n", desc)

		cctx, cancel := context.WithTimeout(ctx, timeout)
		cmd := exec.CommandContext(cctx, path, args...)
		cmd.Dir = p.release.Root
		cmd.Env = p.env
		cmd.Stdout = io.MultiWriter(logs.stdout, tail)
		cmd.Stderr = io.MultiWriter(logs.stderr, tail)
		// Its own process group, so a timeout kills everything it started.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		if cfg.User != "" {
			cred, err := credential(cfg.User)
			if err != nil {
				cancel()
				return d.fail(cfg, "%s: %v", desc, err)
			}
			cmd.SysProcAttr.Credential = cred
		}
		start := time.Now()
		err = cmd.Run()
		timedOut := errors.Is(cctx.Err(), context.DeadlineExceeded)
		cancel()
		took := time.Since(start).Round(10 * time.Millisecond)
		if err != nil {
			why := err.Error()
			var ee *exec.ExitError
			switch {
			case timedOut:
				why = fmt.Sprintf("timed out after %s (pre_command_timeout)", timeout)
			case errors.As(err, &ee):
				why = fmt.Sprintf("exit code %d after %s", ee.ExitCode(), took)
			}
			return d.fail(cfg, "Failed %s: %s; the node was not started. Last output:\n%s", desc, why, tail.lastLines(6))
		}
		d.event(cfg, "Finished %s in %s", desc, took)
	}
	return nil
}

// tailWriter keeps the last max bytes written to it, from stdout and
// stderr at once.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailWriter) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimRight(string(t.buf), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}
