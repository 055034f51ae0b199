package driver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/nomad/drivers/shared/executor"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/launch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
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
// directory, no link is followed in any component, and it must be a FIFO, or the
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
	f, err := taskdir.OpenFile(root, filepath.ToSlash(rel), os.O_WRONLY|syscall.O_NONBLOCK, 0)
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
// release. Each runs inside the task as its own executor Launch: the
// task's user, isolation, resources, cgroup and network namespace, with a
// timeout, and everything it started is killed when it ends. The first
// that fails stops the start, with a task event that names it, its exit
// code and the end of its output.
func (d *Driver) runPreCommands(ctx context.Context, cfg *drivers.TaskConfig, tc *TaskConfig, p *prepared, logs *taskLogs) error {
	timeout := tc.preCommandTimeout()
	// A root that took hot upgrades holds several versions of its
	// applications: relx's eval gets those of the version that starts,
	// as the plugin's own tree of it names them.
	var libs []string
	if tree := p.trees[p.release.Version]; tree != "" && p.release.Kind == release.Relx {
		if pkg, err := relup.InspectVersion(tree, p.release.Name, p.release.Version); err == nil {
			libs = libNames(pkg)
		}
	}
	for i, argv := range tc.PreCommands {
		desc := fmt.Sprintf("pre-command %d/%d (%s)", i+1, len(tc.PreCommands), clip(strings.Join(argv, " "), 80))
		path, args, err := launch.PreCommand(p.release, argv, libs)
		if err != nil {
			return d.fail(cfg, "%s: %v", desc, err)
		}
		fmt.Fprintf(logs.stdout, "==> beam driver: running %s\n", desc)
		start := time.Now()
		res, err := d.runPreCommand(ctx, cfg, append([]string{path}, args...), p, logs, timeout)
		took := time.Since(start).Round(10 * time.Millisecond)
		if err != nil {
			return d.fail(cfg, "Failed %s: %v; the node was not started", desc, err)
		}
		if res.why != "" {
			return d.fail(cfg, "Failed %s: %s after %s; the node was not started. Last output:\n%s", desc, res.why, took, res.tail)
		}
		d.event(cfg, "Finished %s in %s", desc, took)
	}
	return nil
}

// preResult is how a pre-command ended: why is empty on success.
type preResult struct {
	why, tail string
}

// runPreCommand runs one pre-command under an executor of its own and
// copies its output to the task's logs.
func (d *Driver) runPreCommand(ctx context.Context, cfg *drivers.TaskConfig, argv []string, p *prepared, logs *taskLogs, timeout time.Duration) (preResult, error) {
	_, client := d.cfg()
	tail := &tailWriter{max: 4096}
	// The executor opens the write ends by /proc path, as it does the
	// task's FIFOs; the driver reads them into the task's logs.
	outR, outW, err := os.Pipe()
	if err != nil {
		return preResult{}, err
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return preResult{}, err
	}
	defer errR.Close()
	pipes := &taskLogs{stdoutPath: fdPath(outW), stderrPath: fdPath(errW)}
	cmd, err := d.launchCommand(cfg, argv, p.env, p.release.Root, pipes)
	if err != nil {
		outW.Close()
		errW.Close()
		return preResult{}, err
	}
	execCfg := &executor.ExecutorConfig{
		LogFile:  filepath.Join(d.privateDir(cfg), "pre-command.out"),
		LogLevel: "debug",
		Compute:  client.Topology.Compute(),
	}
	ex, pc, err := executor.CreateExecutor(d.logger.With("task_id", cfg.ID, "pre_command", argv[0]), client, execCfg)
	if err != nil {
		outW.Close()
		errW.Close()
		return preResult{}, fmt.Errorf("failed to create executor: %w", err)
	}
	defer pc.Kill()
	oom := oomCounter(cfg)
	_, err = ex.Launch(cmd)
	outW.Close()
	errW.Close()
	if err != nil {
		return preResult{}, fmt.Errorf("failed to start: %w", err)
	}
	var copies sync.WaitGroup
	copies.Add(2)
	go func() { defer copies.Done(); io.Copy(io.MultiWriter(logs.stdout, tail), outR) }()
	go func() { defer copies.Done(); io.Copy(io.MultiWriter(logs.stderr, tail), errR) }()

	wctx, cancel := context.WithTimeout(ctx, timeout)
	ps, err := ex.Wait(wctx)
	cancel()
	res := preResult{}
	switch {
	case err != nil && errors.Is(wctx.Err(), context.DeadlineExceeded):
		res.why = fmt.Sprintf("timed out after %s (pre_command_timeout)", timeout)
	case err != nil:
		res.why = fmt.Sprintf("lost its executor: %v", err)
	case oom.killed():
		res.why = "killed by the task's memory limit (OOM Killed)"
	case ps.Signal != 0:
		res.why = fmt.Sprintf("killed by signal %d", ps.Signal)
	case ps.ExitCode != 0:
		res.why = fmt.Sprintf("exit code %d", ps.ExitCode)
	}
	// Nothing it started outlives it: not its process group, nor what
	// left that group with setsid.
	_ = ex.Shutdown("SIGKILL", 0)
	if err := killCgroup(cfg); err != nil {
		return preResult{}, fmt.Errorf("cannot kill what it left running: %w", err)
	}
	done := make(chan struct{})
	go func() { copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		// A process outside the cgroup holds the pipes: stop reading.
		outR.Close()
		errR.Close()
	}
	res.tail = tail.lastLines(6)
	return res, nil
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
