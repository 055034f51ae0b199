package driver

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/hot"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

// HealthCommand is a command that the driver answers itself in ExecTask,
// without starting a process: a BEAM-level health check for a Consul
// script check.
//
//	check {
//	  type     = "script"
//	  task     = "app"
//	  command  = "beam-health"
//	  interval = "5s"
//	  timeout  = "3s"
//	}
//
// It passes (exit 0) when the node has finished booting and every
// application of its current release runs (for a Gleam shipment, which has
// no release, when the node answers); it is critical (exit 2) while
// the node boots, after an application crashed, or when the node does not
// answer. During a node's first minute the check waits, within its
// timeout, for the boot to finish. An HTTP check sees whether the app answers; this one sees
// whether the node is whole.
const HealthCommand = "beam-health"

// bootWindow is how long after its start a node counts as booting for
// beam-health, healthRetry how often the check asks a booting node again
// within its timeout, and healthMargin what it leaves of the timeout.
const (
	bootWindow   = time.Minute
	healthRetry  = 250 * time.Millisecond
	healthMargin = 500 * time.Millisecond
)

// health runs the BEAM health check for a task.
func (d *Driver) health(h *taskHandle, timeout time.Duration) *drivers.ExecTaskResult {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	start := time.Now()
	msg, ok, booting := d.checkNode(ctx, h)
	// A node that has only just started gets the check's timeout, less a
	// margin for Nomad's own timer, to finish booting: the first check of
	// a new allocation then passes as soon as the node is up, not one
	// interval later, and every deployment that waits for its checks is
	// shorter by that interval.
	deadline := start.Add(timeout - healthMargin)
	for !ok && booting && time.Since(h.snapshot().StartedAt) < bootWindow {
		if time.Until(deadline) < healthRetry {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(healthRetry):
		}
		if ctx.Err() != nil {
			break
		}
		msg, ok, booting = d.checkNode(ctx, h)
	}
	h.logger.Debug("beam-health", "ok", ok, "result", msg, "took", time.Since(start))
	code := 0
	if !ok {
		code = 2 // critical, in Consul's script check terms
	}
	return &drivers.ExecTaskResult{Stdout: []byte(msg + "\n"), ExitResult: &drivers.ExitResult{ExitCode: code}}
}

// checkNode reports whether the node is up and its release's applications
// run, with a line that says so or why not. booting says that the node does
// not answer or has not finished starting: asking again may help.
func (d *Driver) checkNode(ctx context.Context, h *taskHandle) (msg string, ok, booting bool) {
	st := h.snapshot()
	if st.Node == "" {
		return "beam-health needs distribution (dist_port) to ask the node", false, false
	}
	ctl, err := d.controlClient(h, &st)
	if err != nil {
		return err.Error(), false, false
	}
	if dl, ok := ctx.Deadline(); ok {
		ctl.Timeout = time.Until(dl)
	}
	node := &hot.Node{Eval: ctl, Root: st.ReleaseRoot, CallTimeout: ctl.Timeout}
	status, running, err := node.Status(ctx)
	if err != nil {
		return fmt.Sprintf("node %s does not answer: %v", st.Node, err), false, true
	}
	if st.ReleaseKind == string(release.Shipment) {
		// A shipment's main runs inside erl's -eval and never returns, so
		// init never reports started; a node that answers is up.
		return fmt.Sprintf("node %s answers (%s, a Gleam shipment: no release applications to check)", st.Node, st.ReleaseName), true, false
	}
	if status != "{started,started}" {
		return fmt.Sprintf("node %s is not up: init status %s", st.Node, status), false, true
	}
	var want []string
	if pkg, err := inspect(&st, st.ReleaseVersion); err == nil {
		want = pkg.AppNames()
	}
	missing := hot.Missing(want, running)
	if len(missing) > 0 {
		return fmt.Sprintf("node %s runs %s %s, but these applications are not running: %s",
			st.Node, st.ReleaseName, st.ReleaseVersion, strings.Join(missing, ", ")), false, false
	}
	return fmt.Sprintf("node %s runs %s %s; %d applications started", st.Node, st.ReleaseName, st.ReleaseVersion, len(running)), true, false
}
