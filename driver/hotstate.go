package driver

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// hotRecord is what the driver remembers of a task's hot upgrades. A task
// handle's driver state cannot change after StartTask, so it lives in the
// task's secrets/beam/hot.json, which outlives restarts of the plugin and
// of the node within the allocation.
type hotRecord struct {
	// Failed holds the raw targets that failed or were refused, so that
	// the same target is not tried again in a loop. A new value (another
	// version, or the same one published again) is tried.
	Failed map[string]bool `json:"failed,omitempty"`
	// Last is the last upgrade's result.
	Last *hotResult `json:"last,omitempty"`
}

// hotResult is one upgrade's result.
type hotResult struct {
	Version string    `json:"version"`
	From    string    `json:"from"`
	Outcome string    `json:"outcome"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at"`
}

func (h *taskHandle) hotFile() string {
	return filepath.Join(h.taskConfig.TaskDir().SecretsDir, "beam", "hot.json")
}

// loadHot reads the task's hot-upgrade record, if any.
func (h *taskHandle) loadHot() {
	b, err := os.ReadFile(h.hotFile())
	if err != nil {
		return
	}
	var rec hotRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		h.logger.Warn("ignoring a damaged hot-upgrade record", "error", err)
		return
	}
	h.hot = rec
}

// recordHot records an upgrade's outcome and saves the record atomically.
func (h *taskHandle) recordHot(raw, from, version, outcome string, err error) {
	res := &hotResult{Version: version, From: from, Outcome: outcome, At: time.Now().UTC()}
	if err != nil {
		res.Error = err.Error()
		if h.hot.Failed == nil {
			h.hot.Failed = map[string]bool{}
		}
		h.hot.Failed[raw] = true
	}
	if outcome != hotCurrent {
		h.hot.Last = res
	}
	b, jerr := json.Marshal(h.hot)
	if jerr != nil {
		return
	}
	p := h.hotFile()
	tmp := p + ".tmp"
	if werr := os.WriteFile(tmp, b, 0o600); werr != nil {
		h.logger.Warn("cannot save the hot-upgrade record", "error", werr)
		return
	}
	if rerr := os.Rename(tmp, p); rerr != nil {
		h.logger.Warn("cannot save the hot-upgrade record", "error", rerr)
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
	h.loadHot()
	// Staging directories of upgrades that a plugin restart cut short.
	stale, _ := filepath.Glob(filepath.Join(filepath.Dir(h.state.ReleaseRoot), ".hot-*"))
	for _, dir := range stale {
		_ = os.RemoveAll(dir)
	}
	ctx, cancel := context.WithCancel(d.ctx)
	h.stopHot = cancel
	go d.watchTargets(ctx, h, hc)
	go func() {
		_, _ = h.exec.Wait(ctx)
		cancel()
	}()
}

// kickHot makes the task's watcher read its target again now.
func (h *taskHandle) kickHot() {
	select {
	case h.hotKick <- struct{}{}:
	default:
	}
}
