package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"

	nomad "github.com/hashicorp/nomad/api"
)

// DeployProgress is one change in a deployment, for progress output.
type DeployProgress struct {
	Status, Description string
	// Groups holds one line per task group: placed, healthy, canaries.
	Groups []string
}

// DeployOption changes how Deploy follows a deployment.
type DeployOption int

// StopAtPromotion: see Deploy.
const StopAtPromotion DeployOption = 1

// DeployError is a deployment that did not succeed.
type DeployError struct {
	Status, Description string
}

func (e *DeployError) Error() string {
	return fmt.Sprintf("deployment %s: %s", e.Status, e.Description)
}

// Deploy registers job and follows its deployment until it ends. It
// returns nil only when the deployment succeeded, or when the job changed
// without one (no update block, or nothing to deploy).
//
// With StopAtPromotion, a deployment whose canaries wait for a manual
// promotion ends Deploy with an error that says how to promote, rather
// than waiting for someone to.
func Deploy(ctx context.Context, c *nomad.Client, job *nomad.Job, ns string, progress func(DeployProgress), opts ...DeployOption) error {
	stopAtPromotion := slices.Contains(opts, StopAtPromotion)
	if progress == nil {
		progress = func(DeployProgress) {}
	}
	wo := (&nomad.WriteOptions{Namespace: ns}).WithContext(ctx)
	var resp *nomad.JobRegisterResponse
	var err error
	if job.JobModifyIndex != nil && *job.JobModifyIndex > 0 {
		// A job as Nomad returned it: a change made since is not lost.
		resp, _, err = c.Jobs().EnforceRegister(job, *job.JobModifyIndex, wo)
	} else {
		resp, _, err = c.Jobs().Register(job, wo)
	}
	if err != nil {
		return fmt.Errorf("register job %s: %w", *job.ID, err)
	}
	id := *job.ID
	var last string
	var index uint64
	for {
		q := (&nomad.QueryOptions{Namespace: ns, WaitIndex: index, WaitTime: 10 * time.Second}).WithContext(ctx)
		d, meta, err := c.Jobs().LatestDeployment(id, q)
		if err != nil {
			return fmt.Errorf("read the deployment of %s: %w", id, err)
		}
		index = meta.LastIndex
		if d == nil || d.JobModifyIndex < resp.JobModifyIndex {
			// No deployment for this version yet: there will be none if
			// the evaluation finished without one.
			ev, _, err := c.Evaluations().Info(resp.EvalID, (&nomad.QueryOptions{Namespace: ns}).WithContext(ctx))
			if err == nil && ev.Status == "complete" && ev.DeploymentID == "" {
				if d2, _, _ := c.Jobs().LatestDeployment(id, (&nomad.QueryOptions{Namespace: ns}).WithContext(ctx)); d2 == nil || d2.JobModifyIndex < resp.JobModifyIndex {
					progress(DeployProgress{Status: "none", Description: "the job changed without a deployment"})
					return nil
				}
			}
			if err == nil && ev.Status == "failed" {
				return fmt.Errorf("evaluation %s failed: %s", ev.ID, ev.StatusDescription)
			}
			index = 0
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		p := DeployProgress{Status: d.Status, Description: d.StatusDescription, Groups: groupLines(d)}
		if s := fmt.Sprint(p); s != last {
			last = s
			progress(p)
		}
		if stopAtPromotion && d.Status == nomad.DeploymentStatusRunning && strings.Contains(d.StatusDescription, "manual promotion") {
			return fmt.Errorf("deployment %s waits for its canaries to be promoted (the job's update block has no auto_promote): "+
				"nomad deployment promote %s, or fail it with nomad deployment fail %s", d.ID[:8], d.ID, d.ID)
		}
		switch d.Status {
		case nomad.DeploymentStatusSuccessful:
			return nil
		case nomad.DeploymentStatusFailed, nomad.DeploymentStatusCancelled:
			return &DeployError{Status: d.Status, Description: d.StatusDescription}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

func groupLines(d *nomad.Deployment) []string {
	var names []string
	for n := range d.TaskGroups {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		s := d.TaskGroups[n]
		line := fmt.Sprintf("%s: %d/%d placed, %d healthy, %d unhealthy", n, s.PlacedAllocs, s.DesiredTotal, s.HealthyAllocs, s.UnhealthyAllocs)
		if s.DesiredCanaries > 0 {
			line += fmt.Sprintf(", canaries %d/%d", len(s.PlacedCanaries), s.DesiredCanaries)
			if s.Promoted {
				line += " (promoted)"
			}
		}
		out = append(out, line)
	}
	return out
}

// ClearStaleTargets drops, from the hot-upgrade Variable of each beam task
// of the job, the keys of allocations that no longer run and, when the
// job's release source changed (a new base version), the "all" key: hot
// targets for the old base do not apply to the new one.
func ClearStaleTargets(ctx context.Context, c *nomad.Client, job *nomad.Job, ns string, baseChanged map[string]bool) error {
	stubs, _, err := c.Jobs().Allocations(*job.ID, false, (&nomad.QueryOptions{Namespace: ns}).WithContext(ctx))
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, s := range stubs {
		if s.ClientStatus == nomad.AllocClientStatusRunning || s.ClientStatus == nomad.AllocClientStatusPending {
			running[s.ID] = true
		}
	}
	var errs []error
	for _, tg := range job.TaskGroups {
		for _, t := range tg.Tasks {
			if t.Driver != "beam" {
				continue
			}
			n := &Nomad{Nomad: c, Job: *job.ID, Group: *tg.Name, Task: t.Name, Namespace: ns}
			cur, _, err := c.Variables().Peek(n.Path(), n.query(ctx, 0))
			if err != nil || cur == nil {
				continue
			}
			set := map[string]*Target{}
			for k := range cur.Items {
				if (k == AllKey && baseChanged[*tg.Name+"/"+t.Name]) || (k != AllKey && !running[k]) {
					set[k] = nil
				}
			}
			if len(set) > 0 {
				if err := n.SetTargets(ctx, set); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

// ReleaseSources returns the release.source of each beam task of a job, by
// "group/task".
func ReleaseSources(job *nomad.Job) map[string]string {
	out := map[string]string{}
	if job == nil {
		return out
	}
	for _, tg := range job.TaskGroups {
		for _, t := range tg.Tasks {
			if t.Driver != "beam" {
				continue
			}
			src := ""
			switch r := t.Config["release"].(type) {
			case map[string]any:
				src, _ = r["source"].(string)
			case []map[string]any:
				if len(r) > 0 {
					src, _ = r[0]["source"].(string)
				}
			case []any:
				if len(r) > 0 {
					if m, ok := r[0].(map[string]any); ok {
						src, _ = m["source"].(string)
					}
				}
			}
			out[*tg.Name+"/"+t.Name] = strings.TrimSpace(src)
		}
	}
	return out
}

// FailureReasons explains a failed deployment: for each allocation of it
// that failed or turned unhealthy, the task events that say why, such as
// the driver's "sha256 mismatch".
func FailureReasons(ctx context.Context, c *nomad.Client, jobID, ns string) []string {
	q := (&nomad.QueryOptions{Namespace: ns}).WithContext(ctx)
	d, _, err := c.Jobs().LatestDeployment(jobID, q)
	if err != nil || d == nil {
		return nil
	}
	allocs, _, err := c.Deployments().Allocations(d.ID, q)
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range allocs {
		healthy := a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil && *a.DeploymentStatus.Healthy
		if healthy || (a.ClientStatus != nomad.AllocClientStatusFailed && a.DeploymentStatus == nil) {
			continue
		}
		for task, ts := range a.TaskStates {
			if ts == nil {
				continue
			}
			for _, e := range ts.Events {
				if e.FailsTask || e.Type == "Driver Failure" || e.Type == "Terminated" || e.Details[hotspec.DetailFailed] != "" {
					out = append(out, fmt.Sprintf("%s %s: %s: %s", a.ID[:8], task, e.Type, e.DisplayMessage))
				}
			}
		}
	}
	return out
}

// SetRelease points the beam task group/task of job at another release:
// its release block's source and sha256, and, when pre is not nil, its
// pre_commands. It edits the job as Nomad returned it, so that no
// jobspec file is needed.
func SetRelease(job *nomad.Job, group, task, source, sum string, pre [][]string) error {
	for _, tg := range job.TaskGroups {
		if tg.Name == nil || *tg.Name != group {
			continue
		}
		for _, t := range tg.Tasks {
			if t.Name != task {
				continue
			}
			var block map[string]any
			switch r := t.Config["release"].(type) {
			case map[string]any:
				block = r
			case []map[string]any:
				if len(r) > 0 {
					block = r[0]
				}
			case []any:
				if len(r) > 0 {
					block, _ = r[0].(map[string]any)
				}
			}
			if block == nil {
				return fmt.Errorf("task %s/%s has no release block to change", group, task)
			}
			block["source"], block["sha256"] = source, sum
			if pre != nil {
				cmds := make([]any, len(pre))
				for i, argv := range pre {
					words := make([]any, len(argv))
					for j, w := range argv {
						words[j] = w
					}
					cmds[i] = words
				}
				t.Config["pre_commands"] = cmds
			}
			return nil
		}
	}
	return fmt.Errorf("job %s has no task %s/%s", *job.ID, group, task)
}
