package driver

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
)

// events collects the driver's task event messages.
func events(t *testing.T, d *Driver) func() string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := d.TaskEvents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var all []string
	go func() {
		for ev := range ch {
			mu.Lock()
			all = append(all, ev.Message)
			for k, v := range ev.Annotations {
				all = append(all, k+"="+v)
			}
			mu.Unlock()
		}
	}()
	return func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(all, "\n")
	}
}

// TestRestartIgnoresPlantedLinks is a task that, before it exits, replaces
// what the driver wrote for it with links to a host file: vm.args and tmp
// in secrets/beam, and its whole release tree. The restart must write
// nothing through them, read nothing through them, and boot a release
// rebuilt from the plugin's own copy.
func TestRestartIgnoresPlantedLinks(t *testing.T) {
	d, h := newHarness(t)
	log := events(t, d)
	victimDir := t.TempDir()
	victim := filepath.Join(victimDir, "shadow")
	const secret = "root:$6$victim-hash-c0ffee"
	if err := os.WriteFile(victim, []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}

	cfg, _ := startFake(t, h)
	readStdout(t, cfg, "fake node up")
	if err := h.StopTask(cfg.ID, 5*time.Second, ""); err != nil {
		t.Fatal(err)
	}
	if err := h.DestroyTask(cfg.ID, true); err != nil {
		t.Fatal(err)
	}

	beam := filepath.Join(cfg.TaskDir().SecretsDir, "beam")
	rel := filepath.Join(cfg.TaskDir().LocalDir, "release")
	plant := func(target, link string) {
		t.Helper()
		if err := os.RemoveAll(link); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(link), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	plant(victim, filepath.Join(beam, "vm.args"))
	plant(victimDir, filepath.Join(beam, "tmp"))
	if err := os.Rename(rel, rel+".old"); err != nil {
		t.Fatal(err)
	}
	plant(victim, filepath.Join(rel, "fake", "releases", "start_erl.data"))
	plant(victim, filepath.Join(rel, "fake", "bin", "fake-0.1.0"))
	plant(victimDir, filepath.Join(rel, "fake", "releases", "0.1.0"))

	// Nomad restarts the task in the same allocation, with a new ID.
	again := *cfg
	again.ID = uuid.Generate()
	if _, _, err := h.StartTask(&again); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.DestroyTask(again.ID, true) })
	if err := h.WaitUntilStarted(again.ID, 10*time.Second); err != nil {
		t.Fatal(err)
	}

	if b, err := os.ReadFile(victim); err != nil || string(b) != secret {
		t.Fatalf("the host file changed: %q, %v", b, err)
	}
	if entries, _ := os.ReadDir(victimDir); len(entries) != 1 {
		t.Errorf("files appeared beside the host file: %v", entries)
	}
	for _, p := range []string{filepath.Join(beam, "vm.args"), filepath.Join(rel, "fake", "releases", "start_erl.data"),
		filepath.Join(rel, "fake", "bin", "fake-0.1.0")} {
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			t.Errorf("%s is not a fresh regular file: %v, %v", p, fi, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(rel, "fake", "releases", "start_erl.data")); string(b) != "13.1.5 0.1.0\n" {
		t.Errorf("start_erl.data = %q, want the release's own", b)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log(), "Restarting") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	all := log()
	if !strings.Contains(all, "Restarting: the release is rebuilt from this node's verified copy") {
		t.Errorf("no restart event in:\n%s", all)
	}
	if strings.Contains(all, "victim-hash") {
		t.Errorf("an event quotes the host file:\n%s", all)
	}
}

// TestCookieFileLinkOut is a cookie_file that the task made a link to a
// host file: the driver must not read it, and must not quote it.
func TestCookieFileLinkOut(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "token")
	const secret = "host-secret-9f8e7d"
	if err := os.WriteFile(victim, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	task := t.TempDir()
	if err := os.MkdirAll(filepath.Join(task, "secrets"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(task, "secrets", "erlang.cookie")); err != nil {
		t.Fatal(err)
	}
	cfg := &drivers.TaskConfig{JobName: "shop", AllocDir: filepath.Dir(task), Name: filepath.Base(task)}
	td, err := taskdir.Open(task)
	if err != nil {
		t.Fatal(err)
	}
	defer td.Close()
	c, err := readCookie(td, cfg, &TaskConfig{CookieFile: "secrets/erlang.cookie"})
	if err == nil || c != "" {
		t.Fatalf("read the cookie through a link out of the task directory: %q", c)
	}
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error quotes the host file: %v", err)
	}
}

// TestTaskSocketLinkRefused is a Task API socket that the task replaced
// with a link to another socket of the host: the driver must not connect.
func TestTaskSocketLinkRefused(t *testing.T) {
	task := t.TempDir()
	if err := os.MkdirAll(filepath.Join(task, "secrets"), 0o777); err != nil {
		t.Fatal(err)
	}
	serve := func(p string) net.Listener {
		t.Helper()
		l, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go acceptAndClose(l)
		return l
	}
	serve(filepath.Join(task, "secrets", "api.sock"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dialTaskSocket(ctx, task, "secrets", "api.sock")
	if err != nil {
		t.Fatalf("the task's own socket: %v", err)
	}
	c.Close()

	host := filepath.Join(t.TempDir(), "host.sock")
	serve(host)
	_ = os.Remove(filepath.Join(task, "secrets", "api.sock"))
	if err := os.Symlink(host, filepath.Join(task, "secrets", "api.sock")); err != nil {
		t.Fatal(err)
	}
	if c, err := dialTaskSocket(ctx, task, "secrets", "api.sock"); err == nil {
		c.Close()
		t.Fatal("connected through a link to a socket of the host")
	}
}

// TestLogFIFOLinkRefused is a task log FIFO that a task replaced with a
// link to a host file: the driver must not write into it.
func TestLogFIFOLinkRefused(t *testing.T) {
	alloc := t.TempDir()
	logs := filepath.Join(alloc, "alloc", "logs")
	if err := os.MkdirAll(logs, 0o777); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(t.TempDir(), "crontab")
	if err := os.WriteFile(victim, []byte("# host file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(logs, ".web.stdout.fifo")
	if err := os.Symlink(victim, p); err != nil {
		t.Fatal(err)
	}
	cfg := &drivers.TaskConfig{AllocDir: alloc}
	if f, err := openFIFO(cfg, p); err == nil {
		f.Close()
		t.Fatal("opened a link to a host file as the task's log")
	}
	// A regular file in its place is refused too, and so is a FIFO that
	// no one reads, at once.
	_ = os.Remove(p)
	if err := os.WriteFile(p, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if f, err := openFIFO(cfg, p); err == nil {
		f.Close()
		t.Fatal("opened a regular file as the task's log")
	}
	_ = os.Remove(p)
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := openFIFO(cfg, p)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("opened a FIFO that no one reads")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("opening a FIFO that no one reads hangs")
	}
	if b, _ := os.ReadFile(victim); string(b) != "# host file\n" {
		t.Fatalf("the host file changed: %q", b)
	}
}

// TestTaskSocketOfTheTaskRefused is a Task API socket that the task's own
// user serves, in place of the Nomad agent's: the driver must not talk to
// it, or the task could hand it fake hot-upgrade targets.
func TestTaskSocketOfTheTaskRefused(t *testing.T) {
	// Not t.TempDir: its parent is closed to other users.
	task, err := os.MkdirTemp("", "beam-task-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(task) })
	if err := os.Chmod(task, 0o755); err != nil {
		t.Fatal(err)
	}
	secrets := filepath.Join(task, "secrets")
	if err := os.MkdirAll(secrets, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secrets, 0o777); err != nil {
		t.Fatal(err)
	}
	l := listenAs(t, 65534, filepath.Join(secrets, "api.sock"))
	defer l.Close()
	go acceptAndClose(l)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := dialTaskSocket(ctx, task, "secrets", "api.sock")
	if err == nil {
		c.Close()
		t.Fatal("talked to a socket that the task's user serves")
	}
	if !strings.Contains(err.Error(), "not served by the Nomad agent (peer uid 65534") {
		t.Fatalf("error %v, want one saying the socket is not the agent's", err)
	}
}

// listenAs listens on a unix socket with the effective uid set to uid on
// this thread alone: the kernel records the listener's credentials, which
// its peers see through SO_PEERCRED.
func listenAs(t *testing.T, uid int, path string) net.Listener {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
		t.Fatalf("setresuid: %v", e)
	}
	l, err := net.Listen("unix", path)
	if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), 0, ^uintptr(0)); e != 0 {
		panic("cannot become root again: " + e.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestNodeNameOfAnotherAllocation is a job that sets node_name to the name
// of another allocation's node on the client: it must not start, even while
// the other allocation's task is between two runs and its name is not
// registered.
func TestNodeNameOfAnotherAllocation(t *testing.T) {
	d, _ := newHarness(t)
	path, sum := fakeRelease(t)
	first := taskConfig(t, &TaskConfig{Release: ReleaseConfig{Source: "file://" + path, SHA256: sum}})
	allocDir := filepath.Join(t.TempDir(), first.AllocID)
	if err := os.Mkdir(allocDir, 0o755); err != nil {
		t.Fatal(err)
	}
	rec := &record{AllocDir: allocDir, Node: "shop-1a2b3c4d@127.0.0.1"}
	if err := d.saveRecord(first, rec); err != nil {
		t.Fatal(err)
	}
	other := taskConfig(t, &TaskConfig{Release: ReleaseConfig{Source: "file://" + path, SHA256: sum}})
	if !d.claimed(other, "shop-1a2b3c4d@10.0.0.9") {
		t.Fatal("another allocation may take a live allocation's node name")
	}
	if d.claimed(first, "shop-1a2b3c4d@127.0.0.1") {
		t.Fatal("an allocation's own record counts against it")
	}
	// Once the first allocation's directory is gone, its record goes too.
	if err := os.RemoveAll(allocDir); err != nil {
		t.Fatal(err)
	}
	if d.claimed(other, "shop-1a2b3c4d@127.0.0.1") {
		t.Fatal("the name stays claimed after its allocation is gone")
	}
	if _, err := os.Stat(d.recordPath(first)); err == nil {
		t.Fatal("the record of a gone allocation was kept")
	}
}

// acceptAndClose answers every connection to l by closing it, until l is
// closed.
func acceptAndClose(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}
