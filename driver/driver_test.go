package driver

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/client/lib/cgroupslib"
	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	dtestutil "github.com/hashicorp/nomad/plugins/drivers/testutils"
)

// fakeNode stands in for a relx release's start script, so that the driver's
// RPCs can be tested without Erlang: it reports how it was started and
// exits 0 on SIGTERM (as the BEAM does through init:stop) but 7 on SIGINT.
const fakeNode = `#!/bin/sh
case "$1" in
foreground)
  echo "fake node up in $(pwd) dist=$ERL_DIST_PORT"
  trap 'echo got TERM; exit 0' TERM
  trap 'echo got INT; exit 7' INT
  trap 'echo got USR1' USR1
  while :; do sleep 0.05; done
  ;;
*)
  echo "unknown command $1" >&2
  exit 1
  ;;
esac
`

// fakeRelease writes a relx-shaped tarball and returns its path and sha256.
func fakeRelease(t *testing.T) (string, string) {
	t.Helper()
	elf, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	files := []struct {
		name string
		body []byte
		mode int64
	}{
		{"fake/bin/fake", []byte(fakeNode), 0o755},
		{"fake/bin/fake-0.1.0", []byte(fakeNode), 0o755},
		{"fake/releases/start_erl.data", []byte("13.1.5 0.1.0\n"), 0o644},
		{"fake/releases/0.1.0/fake.rel", []byte("{release, {\"fake\", \"0.1.0\"}, {erts, \"13.1.5\"}, []}.\n"), 0o644},
		{"fake/releases/0.1.0/vm.args", []byte("-name fake@127.0.0.1\n-setcookie build\n+K true\n"), 0o644},
		{"fake/erts-13.1.5/bin/beam.smp", elf, 0o755},
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "fake-0.1.0.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return p, hex.EncodeToString(sum[:])
}

// newHarness returns a driver configured with a scratch data_dir, behind
// Nomad's in-memory plugin harness.
func newHarness(t *testing.T) (*Driver, *dtestutil.DriverHarness) {
	t.Helper()
	// Without a Nomad client there are no task cgroups, and the executor
	// writes its cgroup.procs into the working directory: keep that out of
	// the source tree.
	t.Chdir(t.TempDir())
	// A Nomad client makes its cgroup parent when it starts; on a machine
	// that has never run one, the executor finds none to join.
	if err := cgroupslib.Init(hclog.NewNullLogger(), fmt.Sprintf("0-%d", runtime.NumCPU()-1)); err != nil {
		t.Fatalf("nomad cgroups: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d := New(ctx, hclog.NewNullLogger())
	h := dtestutil.NewDriverHarness(t, d)
	cfg := &Config{DataDir: t.TempDir(), RequireSHA256: true, EPMDPort: freePort(t), EPMDAddr: "127.0.0.1",
		FileRoots: []string{os.TempDir()}}
	var data []byte
	if err := base.MsgPackEncode(&data, cfg); err != nil {
		t.Fatal(err)
	}
	if err := h.SetConfig(&base.Config{PluginConfig: data}); err != nil {
		t.Fatal(err)
	}
	return d, h
}

func taskConfig(t *testing.T, tc *TaskConfig) *drivers.TaskConfig {
	t.Helper()
	cfg := &drivers.TaskConfig{
		ID:      uuid.Generate(),
		AllocID: uuid.Generate(),
		JobName: "shop",
		Name:    "web",
	}
	if err := cfg.EncodeConcreteDriverConfig(tc); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startFake starts the fake release and returns its task config and handle.
func startFake(t *testing.T, h *dtestutil.DriverHarness) (*drivers.TaskConfig, *drivers.TaskHandle) {
	t.Helper()
	path, sum := fakeRelease(t)
	cfg := taskConfig(t, &TaskConfig{Release: ReleaseConfig{Source: "file://" + path, SHA256: sum}})
	cleanup := mkAllocDir(t, h, cfg, true)
	t.Cleanup(cleanup)
	handle, _, err := h.StartTask(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.WaitUntilStarted(cfg.ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return cfg, handle
}

func readStdout(t *testing.T, cfg *drivers.TaskConfig, want string) string {
	t.Helper()
	p := filepath.Join(cfg.TaskDir().LogDir, cfg.Name+".stdout.0")
	var out string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(p)
		out = string(b)
		if strings.Contains(out, want) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("stdout lacks %q:\n%s", want, out)
	return ""
}

// TestStopTaskDefaultsToSIGTERM checks that a stop without kill_signal sends
// SIGTERM, so the BEAM runs init:stop, rather than the executor's SIGINT,
// on which it halts at once.
func TestStopTaskDefaultsToSIGTERM(t *testing.T) {
	d, h := newHarness(t)
	cfg, _ := startFake(t, h)
	out := readStdout(t, cfg, "fake node up in ")
	if !strings.Contains(out, filepath.Join(cfg.TaskDir().LocalDir, "release", "fake")) {
		t.Errorf("node did not start in the release root:\n%s", out)
	}

	ch, err := h.WaitTask(context.Background(), cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.StopTask(cfg.ID, 5*time.Second, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-ch:
		if res.ExitCode != 0 {
			t.Fatalf("exit code %d, want 0 from SIGTERM", res.ExitCode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("task did not exit")
	}
	readStdout(t, cfg, "got TERM")
	if err := h.DestroyTask(cfg.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.InspectTask(cfg.ID); err != drivers.ErrTaskNotFound {
		t.Fatalf("InspectTask after destroy = %v, want ErrTaskNotFound", err)
	}
}

func TestRecoverTask(t *testing.T) {
	d, h := newHarness(t)
	cfg, handle := startFake(t, h)
	before, err := h.InspectTask(cfg.ID)
	if err != nil {
		t.Fatal(err)
	}

	// Forget the task, as a restarted plugin would, and recover it.
	d.tasks.Delete(cfg.ID)
	if err := h.RecoverTask(handle); err != nil {
		t.Fatal(err)
	}
	after, err := h.InspectTask(cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != drivers.TaskStateRunning {
		t.Fatalf("recovered task is %s", after.State)
	}
	if before.DriverAttributes["pid"] != after.DriverAttributes["pid"] {
		t.Fatalf("pid changed from %s to %s", before.DriverAttributes["pid"], after.DriverAttributes["pid"])
	}
	if after.DriverAttributes["release_version"] != "0.1.0" || after.DriverAttributes["release_kind"] != "relx" {
		t.Errorf("recovered attributes %v", after.DriverAttributes)
	}
	if err := h.DestroyTask(cfg.ID, true); err != nil {
		t.Fatal(err)
	}
}

func TestExecTaskRunsInReleaseRoot(t *testing.T) {
	_, h := newHarness(t)
	cfg, _ := startFake(t, h)
	res, err := h.ExecTask(cfg.ID, []string{"/bin/sh", "-c", "pwd; ls bin"}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Stdout)
	if res.ExitResult.ExitCode != 0 || !strings.Contains(out, "/local/release/fake") || !strings.Contains(out, "fake-0.1.0") {
		t.Fatalf("exec exit %d, output:\n%s", res.ExitResult.ExitCode, out)
	}
	if err := h.DestroyTask(cfg.ID, true); err != nil {
		t.Fatal(err)
	}
}

func TestStartTaskRejectsWrongSHA256(t *testing.T) {
	d, h := newHarness(t)
	path, sum := fakeRelease(t)
	wrong := strings.Repeat("0", 64)
	cfg := taskConfig(t, &TaskConfig{Release: ReleaseConfig{Source: "file://" + path, SHA256: wrong}})
	t.Cleanup(mkAllocDir(t, h, cfg, false))

	events, err := d.TaskEvents(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = h.StartTask(cfg)
	if err == nil {
		t.Fatal("started a release whose sha256 does not match")
	}
	for _, want := range []string{"sha256 mismatch", wrong, sum, path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	var msgs []string
	timeout := time.After(5 * time.Second)
	for !strings.Contains(strings.Join(msgs, "\n"), "Fetch failed") {
		select {
		case ev := <-events:
			msgs = append(msgs, ev.Message)
		case <-timeout:
			t.Fatalf("no task event says the fetch failed: %q", msgs)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.TaskDir().LocalDir, "release")); err == nil {
		t.Error("the release was unpacked despite the mismatch")
	}
}

func TestSignalTask(t *testing.T) {
	_, h := newHarness(t)
	cfg, _ := startFake(t, h)
	readStdout(t, cfg, "fake node up")
	if err := h.SignalTask(cfg.ID, "SIGUSR1"); err != nil {
		t.Fatal(err)
	}
	readStdout(t, cfg, "got USR1")
	if err := h.SignalTask(cfg.ID, "SIGBOGUS"); err == nil || !strings.Contains(err.Error(), "unknown signal") {
		t.Fatalf("SignalTask(SIGBOGUS) = %v, want an unknown signal error", err)
	}
	if err := h.DestroyTask(cfg.ID, true); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestSHA256FromSidecar checks that without release.sha256 the driver reads
// <tarball>.sha256, and refuses the release when there is none.
func TestSHA256FromSidecar(t *testing.T) {
	_, h := newHarness(t)
	path, sum := fakeRelease(t)

	cfg := taskConfig(t, &TaskConfig{Release: ReleaseConfig{Source: "file://" + path}})
	t.Cleanup(mkAllocDir(t, h, cfg, false))
	_, _, err := h.StartTask(cfg)
	if err == nil || !strings.Contains(err.Error(), ".sha256 does not exist") {
		t.Fatalf("StartTask without any sha256 = %v, want a missing .sha256 error", err)
	}

	if err := os.WriteFile(path+".sha256", []byte(sum+"  fake-0.1.0.tar.gz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg = taskConfig(t, &TaskConfig{Release: ReleaseConfig{Source: "file://" + path}})
	t.Cleanup(mkAllocDir(t, h, cfg, true))
	if _, _, err := h.StartTask(cfg); err != nil {
		t.Fatal(err)
	}
	if err := h.WaitUntilStarted(cfg.ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := h.DestroyTask(cfg.ID, true); err != nil {
		t.Fatal(err)
	}
}
