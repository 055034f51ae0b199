package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"
)

// Gate says how an allocation's health is judged after an upgrade.
func (n *Nomad) Gate() string {
	if n.Checks {
		return "its Consul checks"
	}
	return "BEAM health (the group registers no Consul checks): the task runs, the node has started, " +
		"and every application of its release runs"
}

// HasChecks reports whether a task group registers Consul checks, in its
// own services or its tasks'.
func HasChecks(tg *nomad.TaskGroup) bool {
	consulChecks := func(ss []*nomad.Service) bool {
		for _, s := range ss {
			if (s.Provider == "" || s.Provider == "consul") && len(s.Checks) > 0 {
				return true
			}
		}
		return false
	}
	if consulChecks(tg.Services) {
		return true
	}
	for _, t := range tg.Tasks {
		if consulChecks(t.Services) {
			return true
		}
	}
	return false
}

// WaitHealthy waits until the allocation passes its gate: every Consul
// check passing when the group has checks, else the driver's BEAM-level
// health. It never waits for checks that do not exist.
func (n *Nomad) WaitHealthy(ctx context.Context, alloc string) (string, error) {
	if n.Checks {
		return n.waitConsul(ctx, alloc)
	}
	return n.waitBEAM(ctx, alloc)
}

// waitConsul waits until every Consul check of the allocation passes.
func (n *Nomad) waitConsul(ctx context.Context, alloc string) (string, error) {
	q := (&consul.QueryOptions{Filter: fmt.Sprintf("ServiceID contains %q", alloc)}).WithContext(ctx)
	last := "no checks registered yet"
	for {
		checks, _, err := n.Consul.Health().State(consul.HealthAny, q)
		switch {
		case err != nil && ctx.Err() == nil:
			last = err.Error()
		case err == nil && len(checks) > 0:
			bad := ""
			for _, c := range checks {
				if c.Status != consul.HealthPassing {
					bad = fmt.Sprintf("check %q is %s", c.Name, c.Status)
				}
			}
			if bad == "" {
				return fmt.Sprintf("%d Consul check(s) pass", len(checks)), nil
			}
			last = bad
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("consul: %s", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitBEAM waits until the task runs and the driver's beam-health, which
// `nomad alloc exec ALLOC beam-health` runs, passes.
func (n *Nomad) waitBEAM(ctx context.Context, alloc string) (string, error) {
	last := "not asked yet"
	for {
		msg, err := n.beamHealth(ctx, alloc)
		if err == nil {
			return "BEAM health: " + msg, nil
		}
		var dead deadTask
		if errors.As(err, &dead) {
			return "", err
		}
		last = err.Error()
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("BEAM health: %s", last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// deadTask is a task that is no longer running: waiting cannot fix it.
type deadTask struct{ error }

func (n *Nomad) beamHealth(ctx context.Context, alloc string) (string, error) {
	a, _, err := n.Nomad.Allocations().Info(alloc, n.query(ctx, 0))
	if err != nil {
		return "", fmt.Errorf("read allocation %s: %w", alloc, err)
	}
	ts := a.TaskStates[n.Task]
	switch {
	case ts == nil:
		return "", fmt.Errorf("task %s has not started", n.Task)
	case ts.State == "dead":
		return "", deadTask{fmt.Errorf("task %s is dead", n.Task)}
	case ts.State != "running":
		return "", fmt.Errorf("task %s is %s", n.Task, ts.State)
	}
	var out, errb bytes.Buffer
	qctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	code, err := n.Nomad.Allocations().Exec(qctx, a, n.Task, false, []string{"beam-health"}, strings.NewReader(""),
		&out, &errb, nil, (&nomad.QueryOptions{Namespace: n.Namespace}).WithContext(qctx))
	if err != nil {
		return "", fmt.Errorf("beam-health through nomad alloc exec: %w", err)
	}
	msg := strings.TrimSpace(out.String() + errb.String())
	if code != 0 {
		return "", fmt.Errorf("beam-health: %s", msg)
	}
	return msg, nil
}

// DeployGate says how Nomad judges the allocations of a deployment of job
// healthy, per task group with a beam task: its update block's
// health_check, and what that means when the group has no checks.
func DeployGate(job *nomad.Job) string {
	var parts []string
	for _, tg := range job.TaskGroups {
		mode := "checks"
		minHealthy := 10 * time.Second
		if u := tg.Update; u != nil {
			if u.HealthCheck != nil && *u.HealthCheck != "" {
				mode = *u.HealthCheck
			}
			if u.MinHealthyTime != nil {
				minHealthy = *u.MinHealthyTime
			}
		}
		var g string
		switch {
		case mode == "checks" && HasChecks(tg):
			g = fmt.Sprintf("its Consul checks pass and its tasks run for %s", minHealthy)
		case mode == "checks" || mode == "task_states":
			g = fmt.Sprintf("its tasks run for %s (no Consul checks; the driver reports a task running once the node "+
				"has started, and fails it if the release does not boot)", minHealthy)
		default:
			g = mode
		}
		parts = append(parts, fmt.Sprintf("%s: %s", name(tg.Name), g))
	}
	return "Nomad deployment health, " + strings.Join(parts, "; ")
}

func name(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
