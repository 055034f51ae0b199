package rollout

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"
)

// Status is what an operator wants to know of one allocation of a beam
// task.
type Status struct {
	Alloc  string `json:"alloc"`
	Name   string `json:"name"`
	Client string `json:"client"` // the Nomad client node
	Node   string `json:"node"`   // the BEAM node name
	// Base is the version the task started from; Hot the version a hot
	// upgrade put in its place, if any.
	Base     string        `json:"base"`
	Hot      string        `json:"hot,omitempty"`
	Health   string        `json:"health"` // passing, warning, critical or none, from Consul
	Restarts uint64        `json:"restarts"`
	Uptime   time.Duration `json:"uptime_ns"`
	// LastDeploy is "full" or "hot"; LastResult what came of it.
	LastDeploy string `json:"last_deploy"`
	LastResult string `json:"last_result"`
	State      string `json:"state"`
	// Peers are the nodes it is connected to, asked of the node itself.
	Peers []string `json:"peers"`
	// PeersError says why the peers could not be asked.
	PeersError string `json:"peers_error,omitempty"`
}

// Statuses returns the status of every allocation of the job's beam task
// that is not yet terminal, by allocation index.
func (n *Nomad) Statuses(ctx context.Context) ([]Status, error) {
	stubs, _, err := n.Nomad.Jobs().Allocations(n.Job, false, n.query(ctx, 0))
	if err != nil {
		return nil, fmt.Errorf("list allocations of job %s: %w", n.Job, err)
	}
	var out []Status
	for _, s := range stubs {
		if s.TaskGroup != n.Group || s.DesiredStatus != "run" ||
			(s.ClientStatus != nomad.AllocClientStatusRunning && s.ClientStatus != nomad.AllocClientStatusPending) {
			continue
		}
		st := Status{Alloc: s.ID, Name: s.Name, Client: s.NodeName, State: s.ClientStatus, Health: "none"}
		if ts := s.TaskStates[n.Task]; ts != nil {
			st.Restarts = ts.Restarts
			if !ts.StartedAt.IsZero() && ts.State == "running" {
				st.Uptime = time.Since(ts.StartedAt).Round(time.Second)
			}
			readEvents(ts, &st)
		}
		if s.DeploymentStatus != nil && st.LastDeploy != "hot" {
			st.LastDeploy = "full"
			switch {
			case s.DeploymentStatus.Healthy == nil:
				st.LastResult = "pending"
			case *s.DeploymentStatus.Healthy:
				st.LastResult = "healthy"
			default:
				st.LastResult = "unhealthy"
			}
		}
		st.Health = n.health(ctx, s.ID)
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return allocIndex(out[i].Name) < allocIndex(out[j].Name) })
	n.askPeers(ctx, out)
	return out, nil
}

// askPeers asks each running node whom it is connected to, all at once.
func (n *Nomad) askPeers(ctx context.Context, rows []Status) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range rows {
		if rows[i].State != nomad.AllocClientStatusRunning || rows[i].Node == "" {
			continue
		}
		wg.Add(1)
		go func(r *Status) {
			defer wg.Done()
			a, _, err := n.Nomad.Allocations().Info(r.Alloc, n.query(ctx, 0))
			if err == nil {
				r.Peers, err = n.Peers(ctx, a)
			}
			if err != nil {
				r.PeersError = err.Error()
			}
		}(&rows[i])
	}
	wg.Wait()
}

// readEvents fills in what the driver's task events tell.
func readEvents(ts *nomad.TaskState, st *Status) {
	for _, e := range ts.Events {
		if v := e.Details["beam.version"]; v != "" {
			// A start: after a crash restart, of the hot version that was
			// made permanent.
			st.Base, st.Hot, st.Node = v, "", e.Details["beam.node"]
			if b := e.Details["beam.base"]; b != "" && b != v {
				st.Base, st.Hot = b, v
			}
			if st.LastDeploy == "" {
				st.LastDeploy = "full"
			}
		}
		r, ok := hotspec.ReportOf(e.Details)
		switch {
		case !ok:
		case r.Outcome == hotspec.Started:
			st.LastDeploy, st.LastResult = "hot", "running "+r.Version
		default:
			st.LastDeploy, st.LastResult = "hot", string(r.Outcome)+" "+r.Version
			if r.Outcome == hotspec.Succeeded {
				st.Hot = r.Version
				if st.Hot == st.Base {
					st.Hot = ""
				}
			}
		}
	}
}

// health sums up the Consul checks of an allocation.
func (n *Nomad) health(ctx context.Context, alloc string) string {
	if n.Consul == nil {
		return "unknown"
	}
	q := (&consul.QueryOptions{Filter: fmt.Sprintf("ServiceID contains %q", alloc)}).WithContext(ctx)
	checks, _, err := n.Consul.Health().State(consul.HealthAny, q)
	if err != nil {
		return "unknown"
	}
	if len(checks) == 0 {
		return "none"
	}
	return checks.AggregatedStatus()
}
