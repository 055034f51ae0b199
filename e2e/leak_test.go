//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// cmdlineLeaks returns the processes whose command line holds secret.
func cmdlineLeaks(secret string) []string {
	var hits []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		b, err := os.ReadFile(p + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(secret)) {
			hits = append(hits, fmt.Sprintf("pid %s: %s", filepath.Base(p), strings.ReplaceAll(string(b), "\x00", " ")))
		}
	}
	return hits
}

// watchCmdlines scans every process's command line for secret while run
// runs, so that short-lived tools are caught too, and returns the hits.
func watchCmdlines(secret string, run func()) []string {
	var (
		mu   sync.Mutex
		hits []string
		done = make(chan struct{})
		wg   sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			h := cmdlineLeaks(secret)
			mu.Lock()
			hits = append(hits, h...)
			mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	run()
	close(done)
	wg.Wait()
	return hits
}

// checkCookieHidden fails the test if the job's cookie shows in a process's
// command line, the task's logs, its events and status, or the Nomad
// client's persisted state (which holds the driver's task state).
func (j *job) checkCookieHidden(t *testing.T) {
	t.Helper()
	if hits := cmdlineLeaks(j.Cookie); len(hits) > 0 {
		t.Errorf("the cookie is in process command lines:\n%s", strings.Join(hits, "\n"))
	}
	for _, args := range [][]string{
		{"alloc", "logs", j.Alloc, "node"},
		{"alloc", "logs", "-stderr", j.Alloc, "node"},
		{"alloc", "status", "-verbose", j.Alloc},
	} {
		out, err := cluster.Nomad(args...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, j.Cookie) {
			t.Errorf("the cookie is in `nomad %s`", strings.Join(args, " "))
		}
	}
	for _, dir := range []string{filepath.Join(cluster.Dir, "nomad", "client"), filepath.Join(cluster.Dir, "beam")} {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(j.Cookie)) {
				t.Errorf("the cookie is persisted in %s", p)
			}
			return nil
		})
	}
}
