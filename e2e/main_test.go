//go:build e2e

package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cluster is shared by every test in this binary.
var (
	cluster  *Cluster
	releases *releaseServer
	stores   *Stores
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// `make e2e` has built everything already; this makes a bare
	// `go test ./e2e/` work too. Make skips what is up to date.
	start := time.Now()
	mk := exec.Command("make", "-C", root, "plugin", "tools", "agents", "releases", "ui-deps", "cni")
	mk.Stdout, mk.Stderr = os.Stderr, os.Stderr
	if err := mk.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build failed:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: builds ready in %s\n", time.Since(start).Round(time.Millisecond))

	dir, err := os.MkdirTemp("", "beam-e2e-")
	if err == nil {
		// Tasks run as nobody and must reach their directories below
		// it, as below a client's own data_dir.
		err = os.Chmod(dir, 0o711)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	releases, err = serveReleases(filepath.Join(root, "build", "releases"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer releases.Close()

	start = time.Now()
	stores, err = StartStores(root, dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer stores.Stop()
	cluster, err = Start(root, dir, stores)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: s3 %s, gcs %s, consul %s and nomad %s ready in %s\n",
		stores.S3Addr, stores.GCSAddr, cluster.ConsulAddr, cluster.NomadAddr, time.Since(start).Round(time.Millisecond))
	code := m.Run()
	cluster.Stop()
	if code == 0 {
		unmountUnder(dir)
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "e2e: agent logs kept in %s\n", dir)
	}
	return code
}

// releaseServer serves build/releases over HTTP on loopback, as a release
// store would.
type releaseServer struct {
	URL string
	dir string
	srv *http.Server

	mu   sync.Mutex
	gets map[string]int // GET requests by path
}

func serveReleases(dir string) (*releaseServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &releaseServer{URL: "http://" + l.Addr().String(), dir: dir, gets: map[string]int{}}
	files := http.FileServer(http.Dir(dir))
	s.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.gets[r.URL.Path]++
		s.mu.Unlock()
		files.ServeHTTP(w, r)
	})}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

// Gets returns how many times a file was requested.
func (s *releaseServer) Gets(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets["/"+name]
}

// Padded writes a copy of a release tarball made unique (and, with pad,
// larger) by a trailing gzip member of random bytes, which the unpacker
// reads past, and returns its name and content.
func (s *releaseServer) Padded(t testing.TB, name string, pad int) (string, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	noise := make([]byte, pad+16)
	_, _ = rand.Read(noise)
	var buf bytes.Buffer
	buf.Write(b)
	zw, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	_, _ = zw.Write(noise)
	_ = zw.Close()
	out := fmt.Sprintf("%s-%x.tar.gz", strings.TrimSuffix(name, ".tar.gz"), noise[:4])
	if err := os.WriteFile(filepath.Join(s.dir, out), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(s.dir, out)) })
	return out, buf.Bytes()
}

func (s *releaseServer) Close() { _ = s.srv.Close() }

// SHA256 returns the hex sha256 of a tarball in the release directory.
func (s *releaseServer) SHA256(t testing.TB, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join(s.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// uniqueJob returns a job ID that no other test uses.
func uniqueJob(t testing.TB, prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000)
}

// unmountUnder detaches what Nomad left mounted below dir: the secrets
// tmpfs of tasks that ran as root stays after the agent stops, and keeps
// os.RemoveAll from removing the directory.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			points = append(points, f[1])
		}
	}
	// Deepest first.
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// port is the release server's port on the host's loopback.
func (s *releaseServer) port() int {
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(s.URL, "http://"))
	n, _ := strconv.Atoi(p)
	return n
}
