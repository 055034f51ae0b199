package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxEnv caps the environment file: Nomad's own limit on a task's
// environment is far below it.
const maxEnv = 4 << 20

// Main runs the sandbox with the arguments that follow Command and never
// returns: it execs the program, or exits 127 with the reason on stderr.
func Main(args []string) {
	s, err := Parse(args)
	if err == nil {
		err = s.exec()
	}
	fmt.Fprintf(os.Stderr, "beam sandbox: %v\n", err)
	os.Exit(127)
}

// exec does the work of Main: join, drop, restrict, exec.
func (s Spec) exec() error {
	// Landlock and no_new_privs hold for the thread that asks; the
	// program is exec'd from that same thread.
	runtime.LockOSThread()
	for _, dir := range s.Cgroups {
		if err := join(dir); err != nil {
			return err
		}
	}
	env, err := readEnv(s.EnvFile)
	if err != nil {
		return err
	}
	env = append(env, s.Env...)
	groups := make([]int, len(s.Groups))
	for i, g := range s.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(int(s.GID), int(s.GID), int(s.GID)); err != nil {
		return fmt.Errorf("setresgid %d: %w", s.GID, err)
	}
	if err := syscall.Setresuid(int(s.UID), int(s.UID), int(s.UID)); err != nil {
		return fmt.Errorf("setresuid %d: %w", s.UID, err)
	}
	if s.UID == 0 {
		// A root task keeps root's files, not the host's kernel.
		if err := dropCaps(); err != nil {
			return err
		}
	}
	if s.Dir != "" {
		if err := os.Chdir(s.Dir); err != nil {
			return fmt.Errorf("working directory: %w", err)
		}
	}
	// Always: no setuid program the task finds raises it again, whatever
	// the isolation.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if s.Landlock {
		if err := restrict(s.ReadOnly, s.ReadWrite); err != nil {
			return err
		}
	}
	path, err := lookPath(s.Argv[0], env)
	if err != nil {
		return err
	}
	if s.Relay {
		return relay(path, s.Argv, env)
	}
	err = syscall.Exec(path, s.Argv, env)
	return fmt.Errorf("exec %s: %w", s.Argv[0], err)
}

// join moves this process into the cgroup at dir.
func join(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "cgroup.procs"), os.O_WRONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("join cgroup: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(strconv.Itoa(os.Getpid())); err != nil {
		return fmt.Errorf("join cgroup %s: %w", dir, err)
	}
	return nil
}

// readEnv reads a NUL-separated environment file.
func readEnv(path string) ([]string, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEnv+1))
	if err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	if len(b) > maxEnv {
		return nil, fmt.Errorf("environment: %s is over %d bytes", path, maxEnv)
	}
	var env []string
	for _, kv := range bytes.Split(b, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env, nil
}

// WriteEnv writes env where the sandbox reads it: path must be in a
// directory only root can write.
func WriteEnv(path string, env []string) error {
	var b bytes.Buffer
	for _, kv := range env {
		if strings.IndexByte(kv, 0) >= 0 {
			return fmt.Errorf("environment variable %q holds a NUL byte", strings.SplitN(kv, "=", 2)[0])
		}
		b.WriteString(kv)
		b.WriteByte(0)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// lookPath finds name the way a shell would, in the PATH of env.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/bin:/usr/bin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if unix.Access(p, unix.X_OK) == nil {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s: not found in PATH", name)
}

// relay runs the program as a child, in a process group of its own, and
// relays its output. When it exits, so does the relay, at once: its group
// is killed, and whatever it left holding its output (a daemon that left
// the group, say) holds the relay's pipe, not the caller's, so the caller
// is never kept waiting. The relay exits with the program's exit code.
func relay(path string, argv, env []string) error {
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := &exec.Cmd{Path: path, Args: argv, Env: env, Stdin: os.Stdin, Stdout: outW, Stderr: errW,
		// Started from this thread, the child inherits its Landlock
		// domain and no_new_privs; it dies with the relay.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("exec %s: %w", argv[0], err)
	}
	outW.Close()
	errW.Close()
	copied := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(os.Stdout, outR); copied <- struct{}{} }()
	go func() { _, _ = io.Copy(os.Stderr, errR); copied <- struct{}{} }()
	_ = cmd.Wait()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	// Relay what is left in the pipes, but no longer than the grace: a
	// daemon the program left (setsid) may hold them open for good.
	grace := time.After(200 * time.Millisecond)
wait:
	for range 2 {
		select {
		case <-copied:
		case <-grace:
			break wait
		}
	}
	code := cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	os.Exit(code)
	return nil
}
