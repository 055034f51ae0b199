package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// WaitTask returns a channel that delivers the node's exit result.
func (d *Driver) WaitTask(ctx context.Context, taskID string) (<-chan *drivers.ExitResult, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	ch := make(chan *drivers.ExitResult)
	go func() {
		defer close(ch)
		var result *drivers.ExitResult
		ps, err := h.exec.Wait(ctx)
		switch {
		case err != nil:
			result = &drivers.ExitResult{Err: fmt.Errorf("executor: error waiting on process: %w", err)}
		default:
			result = h.exitResultOf(ps)
		}
		select {
		case <-ctx.Done():
		case <-d.ctx.Done():
		case ch <- result:
		}
	}()
	return ch, nil
}

// StopTask stops the node gracefully: SIGTERM makes the BEAM run init:stop,
// so applications shut down in order. Nomad passes an empty signal when the
// jobspec sets no kill_signal, and the executor would turn that into
// SIGINT, on which the BEAM halts at once; so empty means SIGTERM here.
func (d *Driver) StopTask(taskID string, timeout time.Duration, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	if signal == "" {
		signal = "SIGTERM"
	}
	if err := h.exec.Shutdown(signal, timeout); err != nil {
		if h.pluginClient.Exited() {
			return nil
		}
		return fmt.Errorf("executor Shutdown failed: %w", err)
	}
	return nil
}

// DestroyTask removes the task, killing the node first when force is set.
func (d *Driver) DestroyTask(taskID string, force bool) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		// Still drop any cache hold: the task may have failed to start
		// or to be recovered.
		d.releaseCache(taskID)
		d.uids.release(taskID)
		return drivers.ErrTaskNotFound
	}
	if h.IsRunning() && !force {
		return errors.New("cannot destroy running task")
	}
	if !h.pluginClient.Exited() {
		if h.IsRunning() {
			if err := h.exec.Shutdown("", 0); err != nil {
				h.logger.Error("destroying executor failed", "error", err)
			}
		}
		h.pluginClient.Kill()
	}
	h.cancel()
	d.unregisterNode(h.state.Node, nodeOwner(h.taskConfig))
	d.stopLocalMapper(h.taskConfig.ID)
	d.uids.release(taskID)
	// The task's environment holds its secrets; it is written again on
	// the next start.
	_ = os.Remove(filepath.Join(d.privateDir(h.taskConfig), "env"))
	d.releaseCache(taskID)
	d.tasks.Delete(taskID)
	return nil
}

// InspectTask returns the task's status.
func (d *Driver) InspectTask(taskID string) (*drivers.TaskStatus, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	return h.TaskStatus(), nil
}

// TaskStats streams the node's CPU and memory use.
func (d *Driver) TaskStats(ctx context.Context, taskID string, interval time.Duration) (<-chan *drivers.TaskResourceUsage, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	return h.exec.Stats(ctx, interval)
}

// TaskEvents streams the driver's task events.
func (d *Driver) TaskEvents(ctx context.Context) (<-chan *drivers.TaskEvent, error) {
	return d.eventer.TaskEvents(ctx)
}

// SignalTask sends a signal to the node.
func (d *Driver) SignalTask(taskID string, signal string) error {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return drivers.ErrTaskNotFound
	}
	sig, err := signalByName(signal)
	if err != nil {
		return err
	}
	if sig == syscall.SIGHUP {
		// SIGHUP kills a BEAM node (OTP 25), so it never reaches it. It
		// asks the driver to read the task's hot-upgrade target now; the
		// upgrade itself runs in the background and reports in task
		// events, because an error here would make Nomad kill the task.
		h.kickHot()
		return nil
	}
	return h.exec.Signal(sig)
}
