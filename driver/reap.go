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
// process group. Under cgroups v1 the freezer holds them still between
// the listing and the kill, so that none forks past it.
func killCgroup(cfg *drivers.TaskConfig) error {
	var dir string
	switch cgroupslib.GetMode() {
	case cgroupslib.CG1:
		dir = cgroupslib.PathCG1(cfg.AllocID, cfg.Name, "freezer")
	case cgroupslib.CG2:
		if cfg.Resources == nil || cfg.Resources.LinuxResources == nil {
			return nil
		}
		dir = cfg.Resources.LinuxResources.CpusetCgroupPath
		_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	default:
		return nil
	}
	if dir == "" {
		return nil
	}
	v1 := cgroupslib.GetMode() == cgroupslib.CG1
	var left []int
	for range 100 {
		var err error
		if left, err = cgroupPids(dir); err != nil || len(left) == 0 {
			return err
		}
		if v1 {
			_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("FROZEN"), 0)
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if v1 {
			_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%d processes still in %s", len(left), dir)
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
