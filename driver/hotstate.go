package driver

import (
	"time"
)

// hotRecord is what the driver remembers of a task's hot upgrades. A task
// handle's driver state cannot change after StartTask, so it lives in the
// task's record in the plugin's data_dir, which outlives restarts of the
// plugin and of the node within the allocation, and which the task cannot
// write.
type hotRecord struct {
	// Failed holds the raw targets that failed or were refused, so that
	// the same target is not tried again in a loop. A new value (another
	// version, or the same one published again) is tried.
	// Only the last maxFailed are kept, so that a stream of bad values
	// cannot grow the record without bound.
	Failed []string `json:"failed,omitempty"`
	// Last is the last upgrade's result.
	Last *hotResult `json:"last,omitempty"`
}

// maxFailed is how many failed targets a task's record keeps.
const maxFailed = 64

// hotResult is one upgrade's result.
type hotResult struct {
	Version string    `json:"version"`
	From    string    `json:"from"`
	Outcome string    `json:"outcome"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at"`
}

// loadHot reads the task's record, with its hot-upgrade history.
func (d *Driver) loadHot(h *taskHandle) {
	rec := d.loadRecord(h.taskConfig)
	if rec == nil {
		rec = &record{AllocDir: h.taskConfig.AllocDir}
	}
	h.rec = rec
	h.hot = rec.HotLog
	for v, root := range rec.Trees {
		h.addTree(v, root)
	}
}

// recordHot records an upgrade's outcome in the task's record.
func (d *Driver) recordHot(h *taskHandle, raw, from, version, outcome string, err error) {
	res := &hotResult{Version: version, From: from, Outcome: outcome, At: time.Now().UTC()}
	if err != nil {
		res.Error = err.Error()
		h.hot.Failed = append(h.hot.Failed, raw)
		if n := len(h.hot.Failed); n > maxFailed {
			h.hot.Failed = h.hot.Failed[n-maxFailed:]
		}
	}
	if outcome != hotCurrent {
		h.hot.Last = res
	}
	d.saveHot(h)
}

// saveHot saves the task's record with its hot-upgrade history.
func (d *Driver) saveHot(h *taskHandle) {
	h.rec.HotLog = h.hot
	if err := d.saveRecord(h.taskConfig, h.rec); err != nil {
		h.logger.Warn("cannot save the hot-upgrade record", "error", err)
	}
}

// snapshot returns a copy of the task's state.
func (h *taskHandle) snapshot() taskState {
	h.stateLock.RLock()
	defer h.stateLock.RUnlock()
	return h.state
}

// setVersion records the release version the node now runs.
func (h *taskHandle) setVersion(v string) {
	h.stateLock.Lock()
	defer h.stateLock.Unlock()
	h.state.ReleaseVersion = v
}

// addTree records where the plugin's own tree of a version is.
func (h *taskHandle) addTree(version, root string) {
	h.stateLock.Lock()
	defer h.stateLock.Unlock()
	trees := make(map[string]string, len(h.state.Trees)+1)
	for v, r := range h.state.Trees {
		trees[v] = r
	}
	trees[version] = root
	h.state.Trees = trees
}

// dropTree forgets the plugin's tree of a version that left the release.
func (h *taskHandle) dropTree(version string) {
	h.stateLock.Lock()
	defer h.stateLock.Unlock()
	trees := make(map[string]string, len(h.state.Trees))
	for v, r := range h.state.Trees {
		if v != version {
			trees[v] = r
		}
	}
	h.state.Trees = trees
}

func (h *taskHandle) pidNow() int {
	h.stateLock.RLock()
	defer h.stateLock.RUnlock()
	return h.pid
}

// startHot starts following the task's hot-upgrade Variable, when the task
// config asks for hot upgrades.
func (d *Driver) startHot(h *taskHandle, hc HotUpgradeConfig) {
	if !hc.Enabled || h.state.Node == "" {
		return
	}
	d.loadHot(h)
	go d.watchTargets(h.ctx, h, hc)
}

// kickHot makes the task's watcher read its target again now.
func (h *taskHandle) kickHot() {
	select {
	case h.hotKick <- struct{}{}:
	default:
	}
}
