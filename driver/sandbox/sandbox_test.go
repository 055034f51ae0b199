package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The test binary becomes the sandbox when asked, as the plugin does.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == Command {
		Main(os.Args[2:])
	}
	os.Exit(m.Run())
}

func TestArgsRoundTrip(t *testing.T) {
	s := Spec{UID: 65534, GID: 65534, Groups: []uint32{7, 8}, Landlock: true,
		ReadOnly: []string{"/usr"}, ReadWrite: []string{"/t", "/u"}, Cgroups: []string{"/sys/fs/cgroup/x"}, Relay: true,
		EnvFile: "/d/env", Env: []string{"A=1"}, Dir: "/t/local", Argv: []string{"erl", "-noshell", "--", "-x"}}
	a := s.Args()
	if a[0] != Command {
		t.Fatalf("first argument %q", a[0])
	}
	got, err := Parse(a[1:])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, s)
	}
	if _, err := Parse([]string{"-uid", "1"}); err == nil {
		t.Fatal("a spec with no program parsed")
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the sandbox tests drop privileges and must run as root, as the plugin does")
	}
	if _, err := ABI(); err != nil {
		t.Fatalf("Landlock: %v", err)
	}
}

// run starts the sandbox around argv and returns its combined output.
func run(t *testing.T, s Spec) (string, error) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, s.Args()...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestConfined(t *testing.T) {
	needRoot(t)
	outside := t.TempDir()
	for _, d := range []string{outside, filepath.Dir(outside)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(outside, "world-readable")
	if err := os.WriteFile(secret, []byte("host secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	task := t.TempDir()
	if err := os.Chmod(task, 0o777); err != nil {
		t.Fatal(err)
	}
	env := filepath.Join(t.TempDir(), "env")
	if err := WriteEnv(env, []string{"PATH=/usr/bin:/bin", "GREETING=hello"}); err != nil {
		t.Fatal(err)
	}
	base := Spec{UID: 65534, GID: 65534, Landlock: true, ReadOnly: SystemReadOnly,
		ReadWrite: append([]string{task}, Devices...), EnvFile: env, Dir: task}

	// The host's world-readable file is out of reach; the task's own
	// directory is not.
	s := base
	s.Argv = []string{"cat", secret}
	if out, err := run(t, s); err == nil || strings.Contains(out, "host secret") {
		t.Fatalf("a confined task read %s: %v\n%s", secret, err, out)
	}
	s.Argv = []string{"sh", "-c", `echo "$GREETING" > mine && cat mine && id -u && id -G`}
	out, err := run(t, s)
	if err != nil {
		t.Fatalf("the task could not use its own directory: %v\n%s", err, out)
	}
	if got := strings.Fields(out); len(got) != 3 || got[0] != "hello" || got[1] != "65534" || got[2] != "65534" {
		t.Fatalf("output %q, want hello, uid 65534 and group 65534 alone (no group 0)", out)
	}
	// A link the task plants toward the host leads nowhere.
	if err := os.Symlink(secret, filepath.Join(task, "link")); err != nil {
		t.Fatal(err)
	}
	s.Argv = []string{"cat", "link"}
	if out, err := run(t, s); err == nil || strings.Contains(out, "host secret") {
		t.Fatalf("a confined task read the host file through a link: %v\n%s", err, out)
	}
	// Without Landlock the same user reads it: the test above proves
	// Landlock, not file modes.
	s = base
	s.Landlock = false
	s.Argv = []string{"cat", secret}
	if out, err := run(t, s); err != nil || !strings.Contains(out, "host secret") {
		t.Fatalf("unconfined: %v\n%s", err, out)
	}
}

func TestRefusesBadSpec(t *testing.T) {
	needRoot(t)
	out, err := run(t, Spec{UID: 65534, GID: 65534, Argv: []string{"no-such-program-here"}})
	if err == nil || !strings.Contains(out, "no-such-program-here: not found") {
		t.Fatalf("got %v\n%s", err, out)
	}
	out, err = run(t, Spec{UID: 65534, GID: 65534, EnvFile: "/nonexistent/env", Argv: []string{"true"}})
	if err == nil || !strings.Contains(out, "environment") {
		t.Fatalf("got %v\n%s", err, out)
	}
}

// TestRootLosesCapabilities: a task that runs as root may not make
// device files, nor keep capabilities beyond rootCaps.
func TestRootLosesCapabilities(t *testing.T) {
	needRoot(t)
	task := t.TempDir()
	s := Spec{UID: 0, GID: 0, Landlock: true, ReadOnly: SystemReadOnly,
		ReadWrite: append([]string{task}, Devices...), Dir: task,
		Argv: []string{"sh", "-c", "grep CapBnd /proc/self/status; mknod disk b 8 0 && echo MADE"}}
	out, _ := run(t, s)
	if strings.Contains(out, "MADE") {
		t.Errorf("a root task made a block device:\n%s", out)
	}
	// cap_sys_admin is bit 21: 0x200000.
	var bnd uint64
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			fmt.Sscanf(strings.TrimSpace(v), "%x", &bnd)
		}
	}
	if bnd == 0 || bnd&(1<<21) != 0 {
		t.Errorf("bounding set %#x: want some capabilities and no cap_sys_admin\n%s", bnd, out)
	}
}

// TestRelayEndsWithTheProgram: a call whose program leaves a daemon
// holding its output still ends when the program does, with its output
// and exit code.
func TestRelayEndsWithTheProgram(t *testing.T) {
	needRoot(t)
	task := t.TempDir()
	if err := os.Chmod(filepath.Dir(task), 0o711); err != nil {
		t.Fatal(err)
	}
	s := Spec{UID: 65534, GID: 65534, Landlock: true, ReadOnly: SystemReadOnly,
		ReadWrite: append([]string{task}, Devices...), Dir: "/", Relay: true,
		Argv: []string{"sh", "-c", "setsid sleep 30 & sleep 0.3; echo answer; exit 3"}}
	start := time.Now()
	out, err := run(t, s)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(out, "answer") {
		t.Fatalf("got %v, %q; want exit 3 and the answer", err, out)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the call took %s: it waited for the daemon", took)
	}
	// The child is as confined as the sandbox would have been.
	secret := filepath.Join(filepath.Dir(task), "world-readable")
	if err := os.WriteFile(secret, []byte("host secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.Argv = []string{"cat", secret}
	if out, err := run(t, s); err == nil || strings.Contains(out, "host secret") {
		t.Fatalf("the relayed program read %s: %v %q", secret, err, out)
	}
}
