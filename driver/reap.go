package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/nomad/client/lib/cgroupslib"
	"github.com/hashicorp/nomad/plugins/drivers"
)

// killCgroup kills every process left in the task's cgroup: what a
// pre-command started and detached with setsid, out of reach of its
// process group. On cgroups v2, cgroup.kill does it at once. On v1 the
// freezer holds them still while they are listed and killed, so that none
// forks past the kill and no pid is reused before its signal lands.
func killCgroup(cfg *drivers.TaskConfig) error {
	var dir string
	v1 := cgroupslib.GetMode() == cgroupslib.CG1
	switch {
	case v1:
		dir = cgroupslib.PathCG1(cfg.AllocID, cfg.Name, "freezer")
	case cgroupslib.GetMode() == cgroupslib.CG2 && cfg.Resources != nil && cfg.Resources.LinuxResources != nil:
		dir = cfg.Resources.LinuxResources.CpusetCgroupPath
	}
	if dir == "" {
		return nil
	}
	var left []int
	for range 50 {
		var err error
		if left, err = cgroupPids(dir); err != nil || len(left) == 0 {
			return err
		}
		if !v1 {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
				return fmt.Errorf("cgroup.kill: %w", err)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err := freeze(dir, "FROZEN"); err != nil {
			_ = freeze(dir, "THAWED")
			return err
		}
		if left, err = cgroupPids(dir); err != nil {
			_ = freeze(dir, "THAWED")
			return err
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if err := freeze(dir, "THAWED"); err != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%d processes are still in %s", len(left), dir)
}

// freeze sets a v1 freezer cgroup's state and waits until it holds.
func freeze(dir, state string) error {
	f := filepath.Join(dir, "freezer.state")
	if err := os.WriteFile(f, []byte(state), 0); err != nil {
		return fmt.Errorf("freezer: %w", err)
	}
	for range 200 {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("freezer: %w", err)
		}
		if strings.TrimSpace(string(b)) == state {
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("freezer of %s did not reach %s", dir, state)
}

func cgroupPids(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}
