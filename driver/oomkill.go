package driver

import (
	"github.com/hashicorp/nomad/client/lib/cgroupslib"
	"github.com/hashicorp/nomad/drivers/shared/executor"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/oom"
)

// oomCount is a task's memory cgroup and its count of OOM kills when the
// node started: the cgroup outlives restarts within the allocation, and so
// does its count.
type oomCount struct {
	cgroup oom.Cgroup
	base   int
}

// oomCounter returns the OOM-kill counter of a task's memory cgroup, or
// nil when there is none to read (no cgroups, as in unit tests).
func oomCounter(cfg *drivers.TaskConfig) *oomCount {
	if cfg.Resources == nil || cfg.Resources.LinuxResources == nil || cfg.Resources.LinuxResources.CpusetCgroupPath == "" {
		return nil
	}
	path := cfg.Resources.LinuxResources.CpusetCgroupPath
	var cg oom.Cgroup
	switch cgroupslib.GetMode() {
	case cgroupslib.CG1:
		var err error
		if cg, err = oom.V1("/sys/fs/cgroup", path, cfg.AllocID, cfg.Name); err != nil {
			return nil
		}
	case cgroupslib.CG2:
		cg = oom.V2(path)
	default:
		return nil
	}
	n, err := cg.Kills()
	if err != nil {
		return nil
	}
	return &oomCount{cgroup: cg, base: n}
}

// killed reports whether the OOM killer has killed a process of the cgroup
// since the count was taken.
func (c *oomCount) killed() bool {
	if c == nil {
		return false
	}
	n, err := c.cgroup.Kills()
	return err == nil && n > c.base
}

// exitResultOf turns the executor's report of the node's end into Nomad's.
// The universal executor never sets OOMKilled; the memory cgroup says.
func (h *taskHandle) exitResultOf(ps *executor.ProcessState) *drivers.ExitResult {
	return &drivers.ExitResult{
		ExitCode:  ps.ExitCode,
		Signal:    ps.Signal,
		OOMKilled: ps.OOMKilled || h.oom.killed(),
	}
}
