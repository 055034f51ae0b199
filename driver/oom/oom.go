// Package oom tells whether the kernel's OOM killer killed a process of a
// task's memory cgroup, for the executors that do not report it: Nomad's
// universal executor never sets ProcessState.OOMKilled, so a node killed by
// its memory limit would otherwise end as a plain exit 137.
package oom

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Cgroup is the memory cgroup of a task.
type Cgroup struct {
	// Dir is the cgroup's directory.
	Dir string
	// File is the interface file that counts OOM kills: memory.oom_control
	// on cgroups v1, memory.events on v2. Both have an oom_kill line.
	File string
}

// V1 returns the memory cgroup that Nomad makes for a task on cgroups v1,
// under /sys/fs/cgroup/memory/PARENT/ALLOC.TASK. The parent (the client's
// cgroup_parent, "nomad" by default) is read from the task's cpuset path,
// which Nomad passes to drivers: /sys/fs/cgroup/cpuset/PARENT/PARTITION,
// with /ALLOC.TASK below it for reserved cores.
func V1(root, cpusetPath, allocID, task string) (Cgroup, error) {
	scope := allocID + "." + task
	rel, err := filepath.Rel(filepath.Join(root, "cpuset"), cpusetPath)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return Cgroup{}, fmt.Errorf("cpuset path %q is not under %s/cpuset", cpusetPath, root)
	}
	parts := strings.Split(rel, string(filepath.Separator))
	if parts[len(parts)-1] == scope {
		parts = parts[:len(parts)-1]
	}
	if len(parts) < 2 {
		return Cgroup{}, fmt.Errorf("cpuset path %q has no partition", cpusetPath)
	}
	parent := filepath.Join(parts[:len(parts)-1]...) // less the partition
	return Cgroup{Dir: filepath.Join(root, "memory", parent, scope), File: "memory.oom_control"}, nil
}

// V2 returns the cgroup of a task on cgroups v2, whose path Nomad passes to
// drivers as the cpuset path.
func V2(cgroupPath string) Cgroup {
	return Cgroup{Dir: cgroupPath, File: "memory.events"}
}

// Kills returns how many processes of the cgroup the OOM killer killed.
func (c Cgroup) Kills() (int, error) {
	f, err := os.Open(filepath.Join(c.Dir, c.File))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == "oom_kill" {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s has no oom_kill count (a kernel older than 4.13)", c.File)
}
