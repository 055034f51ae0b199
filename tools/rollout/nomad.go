package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"
)

// Nomad is the Cluster of a real job: Nomad for allocations, the Variable
// and task events, Consul for health.
type Nomad struct {
	Nomad  *nomad.Client
	Consul *consul.Client
	// Job, Group and Task name the beam task.
	Job, Group, Task string
	// Namespace is the job's Nomad namespace.
	Namespace string
	// Checks says whether the task group registers Consul checks: if
	// not, health is the driver's BEAM-level health (see Gate).
	Checks bool
}

// Path is the hot-upgrade Variable the driver follows by default.
func (n *Nomad) Path() string {
	return hotspec.Path(n.Job, n.Group, n.Task)
}

func (n *Nomad) query(ctx context.Context, index uint64) *nomad.QueryOptions {
	return (&nomad.QueryOptions{Namespace: n.Namespace, WaitIndex: index, WaitTime: 30 * time.Second}).WithContext(ctx)
}

// Allocs returns the running allocations of the task group.
func (n *Nomad) Allocs(ctx context.Context) ([]Alloc, error) {
	stubs, _, err := n.Nomad.Jobs().Allocations(n.Job, false, n.query(ctx, 0))
	if err != nil {
		return nil, fmt.Errorf("list allocations of job %s: %w", n.Job, err)
	}
	var out []Alloc
	for _, s := range stubs {
		if s.ClientStatus != nomad.AllocClientStatusRunning || s.DesiredStatus != "run" || s.TaskGroup != n.Group {
			continue
		}
		a := Alloc{ID: s.ID, Name: s.Name, Index: allocIndex(s.Name)}
		a.Version = Version(s.TaskStates[n.Task])
		info := Release(s.TaskStates[n.Task])
		a.Release, a.ERTS = info.Name, info.ERTS
		out = append(out, a)
	}
	return out, nil
}

// allocIndex reads N from an allocation name job.group[N].
func allocIndex(name string) int {
	i := len(name) - 1
	if i < 0 || name[i] != ']' {
		return -1
	}
	j := i
	for j > 0 && name[j-1] != '[' {
		j--
	}
	n, err := strconv.Atoi(name[j:i])
	if err != nil {
		return -1
	}
	return n
}

// Version returns the release version a beam task runs, from the driver's
// task events: the start event's beam.version, or the last successful hot
// upgrade's beam.hot.version after it.
func Version(ts *nomad.TaskState) string {
	if ts == nil {
		return ""
	}
	v := ""
	for _, e := range ts.Events {
		switch {
		case e.Details["beam.version"] != "":
			v = e.Details["beam.version"]
		case hotspec.Outcome(e.Details[hotspec.DetailOutcome]) == hotspec.Succeeded:
			v = e.Details[hotspec.DetailVersion]
		}
	}
	return v
}

// SetTargets changes keys of the Variable with check-and-set, so that
// concurrent writers never lose each other's keys.
func (n *Nomad) SetTargets(ctx context.Context, set map[string]*Target) error {
	vars := n.Nomad.Variables()
	wo := (&nomad.WriteOptions{Namespace: n.Namespace}).WithContext(ctx)
	for attempt := 0; ; attempt++ {
		cur, _, err := vars.Peek(n.Path(), n.query(ctx, 0))
		if err != nil {
			return fmt.Errorf("read variable %s: %w", n.Path(), err)
		}
		items := map[string]string{}
		var index uint64
		if cur != nil {
			maps.Copy(items, cur.Items)
			index = cur.ModifyIndex
		}
		for k, t := range set {
			if t == nil {
				delete(items, k)
				continue
			}
			b, err := json.Marshal(t)
			if err != nil {
				return err
			}
			items[k] = string(b)
		}
		switch {
		case cur == nil && len(items) == 0:
			return nil
		case cur == nil:
			_, _, err = vars.CheckedCreate(&nomad.Variable{Namespace: n.Namespace, Path: n.Path(), Items: items}, wo)
		case len(items) == 0:
			_, err = vars.CheckedDelete(n.Path(), index, wo)
		default:
			_, _, err = vars.CheckedUpdate(&nomad.Variable{Namespace: n.Namespace, Path: n.Path(), Items: items, ModifyIndex: index}, wo)
		}
		var conflict nomad.ErrCASConflict
		if errors.As(err, &conflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return fmt.Errorf("write variable %s: %w", n.Path(), err)
		}
		return nil
	}
}

// Mark returns the time of the task's newest event, by the client's clock:
// outcomes after it are new, whatever this machine's clock says.
func (n *Nomad) Mark(ctx context.Context, alloc string) (time.Time, error) {
	a, _, err := n.Nomad.Allocations().Info(alloc, n.query(ctx, 0))
	if err != nil {
		return time.Time{}, fmt.Errorf("read allocation %s: %w", alloc, err)
	}
	var t int64
	if ts := a.TaskStates[n.Task]; ts != nil {
		for _, e := range ts.Events {
			t = max(t, e.Time)
		}
	}
	return time.Unix(0, t), nil
}

// WaitOutcome follows the allocation with blocking queries until the
// driver reports the outcome of the upgrade to version after since.
func (n *Nomad) WaitOutcome(ctx context.Context, alloc, version string, since time.Time) (Outcome, error) {
	var index uint64
	for {
		a, meta, err := n.Nomad.Allocations().Info(alloc, n.query(ctx, index))
		if err != nil {
			if ctx.Err() != nil {
				return Outcome{}, fmt.Errorf("no outcome from the driver: %w", ctx.Err())
			}
			return Outcome{}, fmt.Errorf("read allocation %s: %w", alloc, err)
		}
		index = meta.LastIndex
		if ts := a.TaskStates[n.Task]; ts != nil {
			for _, e := range ts.Events {
				r, ok := hotspec.ReportOf(e.Details)
				if !ok || !r.Outcome.Final() || r.Version != version || !time.Unix(0, e.Time).After(since) {
					continue
				}
				return Outcome{Result: r.Outcome, Message: e.DisplayMessage, Took: r.Took, Stage: r.Stage}, nil
			}
			if ts.State == "dead" {
				return Outcome{}, fmt.Errorf("task %s of allocation %s is dead", n.Task, alloc)
			}
		}
	}
}

// ReleaseInfo is what the driver's start event tells of a task's release.
type ReleaseInfo struct {
	Name, Kind, Node, Version string
	// ERTS is the emulator version the node runs; empty from drivers
	// older than the beam.erts detail.
	ERTS string
}

// Release reads the release of a beam task from its latest start event.
func Release(ts *nomad.TaskState) ReleaseInfo {
	var r ReleaseInfo
	if ts == nil {
		return r
	}
	for _, e := range ts.Events {
		if v := e.Details["beam.version"]; v != "" {
			r = ReleaseInfo{Name: e.Details["beam.release"], Kind: e.Details["beam.kind"], Node: e.Details["beam.node"], Version: v,
				ERTS: e.Details["beam.erts"]}
		}
	}
	return r
}

// Command returns the command, run in the release's root as exec does,
// that opens a remote shell on the node, or with expr evaluates it there
// and prints the result.
func (r ReleaseInfo) Command(expr string) ([]string, error) {
	bin := "bin/" + r.Name
	switch r.Kind {
	case "mix":
		if expr != "" {
			return []string{bin, "rpc", "IO.inspect(" + expr + ")"}, nil
		}
		return []string{bin, "remote"}, nil
	case "relx":
		if expr != "" {
			return []string{bin, "eval", expr}, nil
		}
		return []string{bin, "remote_console"}, nil
	case "shipment":
		return nil, errors.New("a Gleam erlang-shipment has no remote console script; run erl -remsh through nomad alloc exec")
	}
	return nil, errors.New("cannot tell the release kind of this allocation from its task events; is it a beam task that started?")
}

// Eval evaluates an expression on an allocation's node through Nomad's
// exec, and returns what it printed.
func (n *Nomad) Eval(ctx context.Context, alloc *nomad.Allocation, expr string) (string, error) {
	cmd, err := Release(alloc.TaskStates[n.Task]).Command(expr)
	if err != nil {
		return "", err
	}
	var out, errb bytes.Buffer
	code, err := n.Nomad.Allocations().Exec(ctx, alloc, n.Task, false, cmd, strings.NewReader(""), &out, &errb, nil,
		(&nomad.QueryOptions{Namespace: n.Namespace}).WithContext(ctx))
	if err != nil {
		return "", err
	}
	if code != 0 {
		return "", fmt.Errorf("exit %d: %s", code, strings.TrimSpace(errb.String()+out.String()))
	}
	return out.String(), nil
}

// Peers returns the nodes an allocation's node is connected to.
func (n *Nomad) Peers(ctx context.Context, alloc *nomad.Allocation) ([]string, error) {
	expr := "nodes()."
	if Release(alloc.TaskStates[n.Task]).Kind == "mix" {
		expr = "Node.list()"
	}
	out, err := n.Eval(ctx, alloc, expr)
	if err != nil {
		return nil, err
	}
	// [a@h, 'b-c@h'] from either printer.
	out = strings.NewReplacer("[", " ", "]", " ", ",", " ", "'", "", ":", "", "\"", "").Replace(out)
	peers := strings.Fields(out)
	if peers == nil {
		peers = []string{}
	}
	return peers, nil
}
