package driver

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/nomad/drivers/shared/executor"
	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
)

// taskState is what the driver persists through the task handle, so that a
// restarted plugin can reattach to the running node.
type taskState struct {
	ReattachConfig *pstructs.ReattachConfig
	Pid            int
	StartedAt      time.Time

	// What runs: shown by InspectTask and used by later operations.
	ReleaseName    string
	ReleaseVersion string
	ReleaseKind    string
	ReleaseRoot    string
	Node           string
	DistPort       int
	DistInside     int    // the port the node listens on, in its namespace
	ERTS           string // erts version the release bundles
	Home           string // the node's private HOME, with the cookie
	SSLDistOptFile string // set under TLS distribution
	// Trees maps each release version on the node to its root in a tree
	// the plugin owns: the driver reads the release there, never in the
	// task's copy, which the task's user can change.
	Trees map[string]string
	// User is the user the task runs as: the jobspec's, or the plugin's
	// default_user when it names none.
	User string
}

// tree returns the root of the plugin's own tree of version vsn of the
// release. A task that an older plugin started has none recorded, and its
// own copy is the task's to change, so it is never read: such a task must
// restart before the driver reads its release again.
func (st *taskState) tree(vsn string) (string, error) {
	if st.Trees == nil {
		return "", fmt.Errorf("the task was started by an older plugin, which kept no copy of its release; restart the task")
	}
	if root, ok := st.Trees[vsn]; ok {
		return root, nil
	}
	return "", fmt.Errorf("version %s is not one the driver put on the node", vsn)
}

// taskHandle is one running BEAM node and the executor that supervises it.
type taskHandle struct {
	exec         executor.Executor
	pluginClient *plugin.Client
	logger       hclog.Logger
	// ctx lives as long as the node: run cancels it when the node exits,
	// DestroyTask when the task goes. The clustering and hot-upgrade
	// loops end with it.
	ctx    context.Context
	cancel context.CancelFunc

	// stateLock guards the fields below it.
	stateLock   sync.RWMutex
	taskConfig  *drivers.TaskConfig
	procState   drivers.TaskState
	startedAt   time.Time
	completedAt time.Time
	exitResult  *drivers.ExitResult

	pid   int
	state taskState
	// oom counts OOM kills in the task's memory cgroup; nil where that
	// cannot be read.
	oom *oomCount

	// Hot upgrades: one at a time, with what was tried.
	hotMu   sync.Mutex
	hot     hotRecord
	rec     *record // the task's record in data_dir
	hotKick chan struct{}
}

// newHandle returns the handle of a node that runs under exec, with a
// lifetime derived from the driver's.
func newHandle(parent context.Context, exec executor.Executor, pc *plugin.Client, logger hclog.Logger, cfg *drivers.TaskConfig) *taskHandle {
	ctx, cancel := context.WithCancel(parent)
	return &taskHandle{
		exec:         exec,
		pluginClient: pc,
		logger:       logger,
		ctx:          ctx,
		cancel:       cancel,
		taskConfig:   cfg,
		procState:    drivers.TaskStateRunning,
		oom:          oomCounter(cfg),
		hotKick:      make(chan struct{}, 1),
	}
}

func (h *taskHandle) TaskStatus() *drivers.TaskStatus {
	h.stateLock.RLock()
	defer h.stateLock.RUnlock()
	return &drivers.TaskStatus{
		ID:          h.taskConfig.ID,
		Name:        h.taskConfig.Name,
		State:       h.procState,
		StartedAt:   h.startedAt,
		CompletedAt: h.completedAt,
		ExitResult:  h.exitResult,
		DriverAttributes: map[string]string{
			"pid":             strconv.Itoa(h.pid),
			"release_name":    h.state.ReleaseName,
			"release_version": h.state.ReleaseVersion,
			"release_kind":    h.state.ReleaseKind,
			"node":            h.state.Node,
		},
	}
}

func (h *taskHandle) IsRunning() bool {
	h.stateLock.RLock()
	defer h.stateLock.RUnlock()
	return h.procState == drivers.TaskStateRunning
}

// run waits for the node to exit and records how it ended; the handle's
// context ends with it.
func (h *taskHandle) run() {
	defer h.cancel()
	ps, err := h.exec.Wait(context.Background())
	h.stateLock.Lock()
	defer h.stateLock.Unlock()
	if err != nil {
		h.exitResult = &drivers.ExitResult{Err: err}
		h.procState = drivers.TaskStateUnknown
		h.completedAt = time.Now()
		return
	}
	h.procState = drivers.TaskStateExited
	h.exitResult = h.exitResultOf(ps)
	h.completedAt = ps.Time
}
