//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
)

// The helpers of the hostile-release suite (hostile_test.go): a host file
// that no release may reach, hostile tarballs built in Go, a loopback
// server for them, the allocation's events read raw, and an epmd client.

// victim is a host file outside every Nomad and plugin directory, with
// random content that no write, event or log line may show.
type victim struct {
	dir, path, content string
}

// newVictim creates the victim and checks it once more when the test
// ends, after the test's jobs were stopped (cleanups run last first).
func newVictim(t *testing.T) *victim {
	t.Helper()
	dir, err := os.MkdirTemp("", "beam-victim-")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	v := &victim{dir: dir, path: filepath.Join(dir, "victim"), content: "hostile-victim-" + hex.EncodeToString(b)}
	if err := os.WriteFile(v.path, []byte(v.content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(v.path, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		v.check(t)
		os.RemoveAll(dir)
	})
	return v
}

// rel is the victim's path without its leading slash: what a link that
// climbs to / then follows.
func (v *victim) rel() string { return strings.TrimPrefix(v.path, "/") }

// check fails the test if the victim changed in any way, or if anything
// appeared beside it.
func (v *victim) check(t *testing.T) {
	t.Helper()
	fi, err := os.Lstat(v.path)
	if err != nil {
		t.Errorf("victim %s: %v", v.path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 || st.Uid != 0 || st.Nlink != 1 {
		t.Errorf("victim %s is now %v, uid %d, %d links; want a regular file, 0644, root's, 1 link",
			v.path, fi.Mode(), st.Uid, st.Nlink)
	}
	if b, err := os.ReadFile(v.path); err != nil || string(b) != v.content {
		t.Errorf("victim %s changed: %q (%v)", v.path, b, err)
	}
	names, _ := os.ReadDir(v.dir)
	if len(names) != 1 {
		var list []string
		for _, n := range names {
			list = append(list, n.Name())
		}
		t.Errorf("something was written beside the victim in %s: %v", v.dir, list)
	}
}

// checkUnquoted fails the test if the victim's content shows in the
// allocation (its events' messages and details, read raw from the API),
// the task's logs, or the Nomad agent's log, which holds the plugin's.
func (v *victim) checkUnquoted(t *testing.T, j *job) {
	t.Helper()
	if j != nil && j.Alloc != "" {
		raw, err := rawAlloc(j.Alloc)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(v.content)) {
			t.Errorf("allocation %s quotes the victim's content", j.Alloc)
		}
		for _, stream := range []string{"-stdout", "-stderr"} {
			out, _ := cluster.Nomad("alloc", "logs", stream, j.Alloc, "node")
			if strings.Contains(out, v.content) {
				t.Errorf("the task's %s quotes the victim's content", stream)
			}
		}
	}
	if strings.Contains(pluginLog(t), v.content) {
		t.Errorf("the plugin log (nomad.log) quotes the victim's content")
	}
}

// pluginLog returns the Nomad agent's log, where the plugin's lines go.
func pluginLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cluster.Dir, "nomad.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitPluginLog waits until the plugin log has a line with every part.
func waitPluginLog(t *testing.T, timeout time.Duration, parts ...string) string {
	t.Helper()
	var line string
	err := waitEvery(time.Second, timeout, func() error {
		if line = logLine(pluginLog(t), parts...); line == "" {
			return fmt.Errorf("no line with %q in nomad.log", parts)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return line
}

// logLine returns the first line of log with every part, or "".
func logLine(log string, parts ...string) string {
	for _, l := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return l
		}
	}
	return ""
}

// tarEntry is one entry of a hostile tarball.
type tarEntry struct {
	name string
	typ  byte
	body string // regular files
	link string // symlinks and hard links
	mode int64
}

func tfile(name, body string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}
func tscript(name, body string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeReg, body: body, mode: 0o755}
}
func tdir(name string) tarEntry { return tarEntry{name: name + "/", typ: tar.TypeDir, mode: 0o755} }
func tsymlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}
func thardlink(name, target string) tarEntry {
	return tarEntry{name: name, typ: tar.TypeLink, link: target, mode: 0o644}
}

// tarGz builds a gzipped tarball of entries, in order.
func tarGz(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode,
			ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// relxTree is a minimal relx-shaped release, NAME 0.1.0 without erts,
// that release.Find accepts: bin/NAME, bin/NAME-0.1.0 (script),
// releases/start_erl.data (left out without startErl) and
// releases/0.1.0/NAME.rel.
func relxTree(name, script string, startErl bool) []tarEntry {
	out := []tarEntry{
		tdir("bin"), tscript("bin/"+name, script), tscript("bin/"+name+"-0.1.0", script),
		tdir("releases"), tdir("releases/0.1.0"),
		tfile("releases/0.1.0/"+name+".rel", fmt.Sprintf("{release,{%q,\"0.1.0\"},{erts,\"13.1.5\"},[]}.\n", name)),
	}
	if startErl {
		out = append(out, tfile("releases/start_erl.data", "13.1.5 0.1.0\n"))
	}
	return out
}

// hostileServer serves hostile tarballs, and whatever else a test hands
// it, on loopback. It stops when the test ends, dripping handlers first.
type hostileServer struct {
	srv  *httptest.Server
	mux  *http.ServeMux
	done chan struct{} // closed when the test ends
}

func newHostileServer(t *testing.T) *hostileServer {
	t.Helper()
	s := &hostileServer{mux: http.NewServeMux(), done: make(chan struct{})}
	s.srv = httptest.NewServer(s.mux) // 127.0.0.1
	t.Cleanup(func() {
		close(s.done)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
	return s
}

// add serves body at /name and returns its URL.
func (s *hostileServer) add(name string, body []byte) string {
	s.mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, name, time.Unix(1700000000, 0), bytes.NewReader(body))
	})
	return s.srv.URL + "/" + name
}

// addFile serves the file at path at /name and returns its URL.
func (s *hostileServer) addFile(name, path string) string {
	s.mux.HandleFunc("/"+name, func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, path) })
	return s.srv.URL + "/" + name
}

// rawAlloc returns the allocation as the Nomad API answers it, undecoded.
func rawAlloc(id string) ([]byte, error) {
	body, err := cluster.NomadAPI.Raw().Response("/v1/allocation/"+id, nil)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(body)
}

// taskOf reads the task's state from the allocation API.
func taskOf(t *testing.T, j *job) *nomadapi.TaskState {
	t.Helper()
	a, _, err := cluster.NomadAPI.Allocations().Info(j.Alloc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return taskState(a, "node")
}

// eventWith returns the first event of the task whose message holds every
// part, the driver's own (type "Driver") first, or fails the test listing
// them all. Nomad repeats a failed start's error in its "Driver Failure"
// event; when only that one holds the parts, the test says so in its log.
func eventWith(t *testing.T, j *job, parts ...string) *nomadapi.TaskEvent {
	t.Helper()
	st := taskOf(t, j)
	has := func(e *nomadapi.TaskEvent) bool {
		msg := e.DisplayMessage
		if msg == "" {
			msg = e.Message
		}
		for _, p := range parts {
			if !strings.Contains(msg, p) {
				return false
			}
		}
		return true
	}
	var all []string
	for _, e := range st.Events {
		all = append(all, fmt.Sprintf("  %s: %s", e.Type, e.DisplayMessage))
	}
	for _, driverOnly := range []bool{true, false} {
		for _, e := range st.Events {
			if (!driverOnly || e.Type == "Driver") && has(e) {
				t.Logf("event %q: %s", e.Type, e.DisplayMessage)
				if e.Type == "Driver Failure" {
					// The driver's event is emitted before StartTask returns,
					// but Nomad may record it after its own.
					t.Logf("NOTE: no event of type Driver holds it (yet); the task's events:\n%s", strings.Join(all, "\n"))
				}
				return e
			}
		}
	}
	t.Fatalf("no task event holds %q; events:\n%s", parts, strings.Join(all, "\n"))
	return nil
}

// submitHostile submits hostile.nomad.hcl and waits until its allocation
// has failed.
func submitHostile(t *testing.T, prefix string, vars map[string]string) *job {
	t.Helper()
	j := submitJob(t, "hostile.nomad.hcl", uniqueJob(t, prefix), vars)
	j.Alloc = j.waitAlloc("failed", 3*time.Minute)
	return j
}

// treeBytes sums the sizes of the regular files below dir.
func treeBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// The epmd protocol, as a node and a client speak it.

func epmdAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(cluster.EPMDPort)) }

func epmdRequest(body []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}

// epmdAlive2 registers name at port as a node would (ALIVE2, highest
// version 6) and returns the reply's result: 0 accepted, 1 refused.
func epmdAlive2(name string, port int) (byte, error) {
	c, err := net.DialTimeout("tcp", epmdAddr(), 3*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req := []byte{120}
	req = binary.BigEndian.AppendUint16(req, uint16(port))
	req = append(req, 77, 0)
	req = binary.BigEndian.AppendUint16(req, 6)
	req = binary.BigEndian.AppendUint16(req, 5)
	req = binary.BigEndian.AppendUint16(req, uint16(len(name)))
	req = append(req, name...)
	req = binary.BigEndian.AppendUint16(req, 0)
	if _, err := c.Write(epmdRequest(req)); err != nil {
		return 0, err
	}
	var resp [2]byte
	if _, err := io.ReadFull(c, resp[:]); err != nil {
		return 0, err
	}
	if resp[0] != 118 && resp[0] != 121 {
		return 0, fmt.Errorf("ALIVE2 reply code %d, want 118 (ALIVE2_X_RESP) or 121", resp[0])
	}
	return resp[1], nil
}

// epmdPortPlease returns the port the port mapper gives for name
// (PORT_PLEASE2), or 0 when it knows no such node.
func epmdPortPlease(name string) (int, error) {
	c, err := net.DialTimeout("tcp", epmdAddr(), 3*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(epmdRequest(append([]byte{122}, name...))); err != nil {
		return 0, err
	}
	var resp [4]byte
	if _, err := io.ReadFull(c, resp[:2]); err != nil {
		return 0, err
	}
	if resp[0] != 119 {
		return 0, fmt.Errorf("PORT_PLEASE2 reply code %d, want 119", resp[0])
	}
	if resp[1] != 0 {
		return 0, nil
	}
	if _, err := io.ReadFull(c, resp[2:4]); err != nil {
		return 0, err
	}
	return int(binary.BigEndian.Uint16(resp[2:4])), nil
}

// connCounter is a TCP listener on loopback that counts the connections
// it accepts, and closes them.
type connCounter struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []string
}

func newConnCounter(t *testing.T) *connCounter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &connCounter{ln: ln}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.mu.Lock()
			c.conns = append(c.conns, conn.RemoteAddr().String()+" at "+time.Now().Format(time.RFC3339Nano))
			c.mu.Unlock()
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return c
}

func (c *connCounter) port() int { return c.ln.Addr().(*net.TCPAddr).Port }

func (c *connCounter) accepted() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.conns...)
}
