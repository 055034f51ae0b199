package peers

import (
	"context"
	"errors"
	"strings"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

// Lister reads a job's allocations from Nomad. A refusal by Nomad's ACLs
// must be reported as an error wrapping ErrDenied.
type Lister interface {
	// JobAllocs lists the job's current allocations (GET
	// /v1/job/:id/allocations). The list does not carry ports.
	JobAllocs(ctx context.Context, namespace, jobID string) ([]*nomad.AllocationListStub, error)
	// Alloc reads one allocation with its resources (GET
	// /v1/allocation/:id).
	Alloc(ctx context.Context, namespace, allocID string) (*nomad.Allocation, error)
}

// Verifier keeps the verified set of one job's dist-port addresses,
// refreshed from Nomad when Consul's index moves (at most once per MinAge)
// and at least every MaxAge. An allocation's ports never change, so each
// allocation is read once; later refreshes only list the job's
// allocations for their status. A Verifier is not safe for concurrent use.
type Verifier struct {
	Lister    Lister
	Namespace string
	JobID     string
	Label     string // the task's dist_port label
	MinAge    time.Duration
	MaxAge    time.Duration
	Now       func() time.Time // time.Now when nil

	set   Set
	at    time.Time
	index uint64
	ports map[string]*nomad.Allocation // trimmed, by allocation ID
	names map[string]string            // node name (without @host) by live allocation ID
}

// NodeName returns the node name, without @host, that the driver reported
// for a live allocation of the job in its start event (DetailNode), or ""
// when none is known yet. Events are the driver's, not the task's: a job
// cannot write them.
func (v *Verifier) NodeName(allocID string) string { return v.names[allocID] }

// nodeName returns the name in the newest start event of s's tasks.
func nodeName(s *nomad.AllocationListStub) string {
	name := ""
	for _, ts := range s.TaskStates {
		if ts == nil {
			continue
		}
		for _, e := range ts.Events {
			if e != nil && e.Details[hotspec.DetailNode] != "" {
				name, _, _ = strings.Cut(e.Details[hotspec.DetailNode], "@")
			}
		}
	}
	return name
}

// Peers returns the verified set, reading Nomad anew when the cached one
// is too old or Consul's index changed. On an error nothing is verified:
// the caller must refuse every instance.
func (v *Verifier) Peers(ctx context.Context, consulIndex uint64) (Set, error) {
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	t := now()
	if v.set != nil {
		age := t.Sub(v.at)
		if age < v.MinAge || (consulIndex == v.index && age < v.MaxAge) {
			return v.set, nil
		}
	}
	set, err := v.refresh(ctx)
	if err != nil {
		v.set = nil
		return nil, err
	}
	v.set, v.at, v.index = set, t, consulIndex
	return set, nil
}

func (v *Verifier) refresh(ctx context.Context) (Set, error) {
	if v.ports == nil {
		v.ports = map[string]*nomad.Allocation{}
	}
	stubs, err := v.Lister.JobAllocs(ctx, v.Namespace, v.JobID)
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	v.names = map[string]string{}
	var allocs []*nomad.Allocation
	for _, s := range stubs {
		if s == nil || !Live(v.Namespace, v.JobID, s.Namespace, s.JobID, s.ClientStatus, s.DesiredStatus) {
			continue
		}
		live[s.ID] = true
		if n := nodeName(s); n != "" {
			v.names[s.ID] = n
		}
		a, ok := v.ports[s.ID]
		if !ok {
			full, err := v.Lister.Alloc(ctx, v.Namespace, s.ID)
			if err != nil && (errors.Is(err, ErrDenied) || ctx.Err() != nil) {
				return nil, err
			}
			if err != nil || full == nil {
				continue // gone meanwhile, or a glitch: unverified this time
			}
			// Keep only what is checked: the full allocation embeds the job.
			a = &nomad.Allocation{ID: full.ID, Namespace: full.Namespace, JobID: full.JobID,
				AllocatedResources: full.AllocatedResources}
			if full.ID != s.ID {
				a = nil // not the allocation asked for: never trust it
			}
			v.ports[s.ID] = a
		}
		if a == nil {
			continue
		}
		// Identity and ports from the allocation, status from the list.
		c := *a
		c.ClientStatus, c.DesiredStatus = s.ClientStatus, s.DesiredStatus
		allocs = append(allocs, &c)
	}
	for id := range v.ports {
		if !live[id] {
			delete(v.ports, id)
		}
	}
	return Build(allocs, v.Namespace, v.JobID, v.Label), nil
}
