package oom

import (
	"os"
	"path/filepath"
	"testing"
)

func TestV1Paths(t *testing.T) {
	const alloc, task = "5157307c-2b65-e4bc-4786-241d4f863ed3", "web"
	for _, tc := range []struct{ cpuset, want string }{
		{"/sys/fs/cgroup/cpuset/nomad/share", "/sys/fs/cgroup/memory/nomad/" + alloc + ".web"},
		{"/sys/fs/cgroup/cpuset/nomad/reserve/" + alloc + ".web", "/sys/fs/cgroup/memory/nomad/" + alloc + ".web"},
		{"/sys/fs/cgroup/cpuset/nomad-client-2.slice/share", "/sys/fs/cgroup/memory/nomad-client-2.slice/" + alloc + ".web"},
	} {
		c, err := V1("/sys/fs/cgroup", tc.cpuset, alloc, task)
		if err != nil || c.Dir != tc.want || c.File != "memory.oom_control" {
			t.Errorf("V1(%s) = %+v, %v; want %s", tc.cpuset, c, err, tc.want)
		}
	}
	for _, bad := range []string{"", "/sys/fs/cgroup/cpuset", "/sys/fs/cgroup/cpuset/share", "/elsewhere/nomad/share"} {
		if c, err := V1("/sys/fs/cgroup", bad, alloc, task); err == nil {
			t.Errorf("V1(%q) = %+v, want an error", bad, c)
		}
	}
}

func TestKills(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
	write("memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n")
	write("old", "oom_kill_disable 0\nunder_oom 0\n")
	for file, want := range map[string]int{"memory.oom_control": 2, "memory.events": 1} {
		if n, err := (Cgroup{Dir: dir, File: file}).Kills(); err != nil || n != want {
			t.Errorf("%s: %d, %v; want %d", file, n, err, want)
		}
	}
	if _, err := (Cgroup{Dir: dir, File: "old"}).Kills(); err == nil {
		t.Error("a file without oom_kill gave a count")
	}
	if _, err := (Cgroup{Dir: dir, File: "missing"}).Kills(); err == nil {
		t.Error("a missing file gave a count")
	}
}
