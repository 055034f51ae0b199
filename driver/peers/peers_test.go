package peers

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
)

const (
	ns    = "shop"
	job   = "api"
	label = "dist"
)

// fakeNomad answers like Nomad for a set of allocations, in any job and
// namespace, filtering as the real endpoints do.
type fakeNomad struct {
	allocs  []*nomad.Allocation
	denied  bool
	lists   int
	reads   int
	readIDs map[string]int
}

func (f *fakeNomad) JobAllocs(_ context.Context, namespace, jobID string) ([]*nomad.AllocationListStub, error) {
	f.lists++
	if f.denied {
		return nil, fmt.Errorf("Unexpected response code: 403 (Permission denied): %w", ErrDenied)
	}
	var out []*nomad.AllocationListStub
	for _, a := range f.allocs {
		if a.Namespace == namespace && a.JobID == jobID {
			out = append(out, &nomad.AllocationListStub{ID: a.ID, Namespace: a.Namespace, JobID: a.JobID,
				ClientStatus: a.ClientStatus, DesiredStatus: a.DesiredStatus, TaskStates: a.TaskStates})
		}
	}
	return out, nil
}

func (f *fakeNomad) Alloc(_ context.Context, namespace, id string) (*nomad.Allocation, error) {
	f.reads++
	if f.readIDs == nil {
		f.readIDs = map[string]int{}
	}
	f.readIDs[id]++
	for _, a := range f.allocs {
		if a.ID == id && a.Namespace == namespace {
			return a, nil
		}
	}
	return nil, errors.New("Unexpected response code: 404 (alloc not found)")
}

// alloc is an allocation whose dist port is ip:port, recorded in
// Shared.Ports, or in Shared.Networks when legacy is set.
func alloc(id, namespace, jobID, status, ip string, port int, legacy bool) *nomad.Allocation {
	a := &nomad.Allocation{ID: id, Namespace: namespace, JobID: jobID, ClientStatus: status,
		DesiredStatus: nomad.AllocDesiredStatusRun, AllocatedResources: &nomad.AllocatedResources{}}
	if status != nomad.AllocClientStatusRunning {
		a.DesiredStatus = nomad.AllocDesiredStatusStop
	}
	other := nomad.PortMapping{Label: "http", Value: port + 1, HostIP: ip}
	if legacy {
		a.AllocatedResources.Shared.Networks = []*nomad.NetworkResource{{IP: ip,
			DynamicPorts: []nomad.Port{{Label: label, Value: port}, {Label: "http", Value: port + 1}}}}
	} else {
		a.AllocatedResources.Shared.Ports = []nomad.PortMapping{{Label: label, Value: port, HostIP: ip}, other}
	}
	return a
}

func entry(id, addr string, port int) *consul.ServiceEntry {
	return &consul.ServiceEntry{Node: &consul.Node{Address: "10.9.9.9"},
		Service: &consul.AgentService{ID: id, Service: "api-dist", Address: addr, Port: port}}
}

func nodeEntry(id, addr string, port int) *consul.ServiceEntry {
	e := entry(id, "", port)
	e.Node.Address = addr
	return e
}

// world: this job's allocations on 10.0.0.1 and 10.0.0.2 (legacy
// networks), a stopped one on 10.0.0.3, the same job ID in another
// namespace on 10.0.0.4, and another job on 10.0.0.1.
func world() *fakeNomad {
	return &fakeNomad{allocs: []*nomad.Allocation{
		alloc("a1", ns, job, nomad.AllocClientStatusRunning, "10.0.0.1", 24001, false),
		alloc("a2", ns, job, nomad.AllocClientStatusRunning, "10.0.0.2", 24002, true),
		alloc("a3", ns, job, nomad.AllocClientStatusComplete, "10.0.0.3", 24003, false),
		alloc("x4", "other", job, nomad.AllocClientStatusRunning, "10.0.0.4", 24004, false),
		alloc("x5", ns, "evil", nomad.AllocClientStatusRunning, "10.0.0.1", 24005, false),
	}}
}

func verifier(f *fakeNomad) *Verifier {
	return &Verifier{Lister: f, Namespace: ns, JobID: job, Label: label, MinAge: time.Second, MaxAge: 10 * time.Second}
}

func TestFilter(t *testing.T) {
	set, err := verifier(world()).Peers(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		entry *consul.ServiceEntry
		alloc string // "" when it must be refused
	}{
		{"genuine", entry("_nomad-task-a1-api-dist", "10.0.0.1", 24001), "a1"},
		{"genuine, legacy networks", entry("whatever", "10.0.0.2", 24002), "a2"},
		{"genuine, node address", nodeEntry("a1", "10.0.0.1", 24001), "a1"},
		{"node address not an allocation's", entry("a1", "", 24001), ""}, // node address 10.9.9.9
		{"genuine, IPv4 in IPv6", entry("a1", "::ffff:10.0.0.1", 24001), "a1"},
		{"another job's port", entry("_nomad-task-a1-api-dist", "10.0.0.1", 24005), ""},
		{"address matches, port differs", entry("a1", "10.0.0.1", 24009), ""},
		{"the allocation's other port", entry("a1", "10.0.0.1", 24002), ""},
		{"same job, other namespace", entry("x4", "10.0.0.4", 24004), ""},
		{"stopped allocation", entry("a3", "10.0.0.3", 24003), ""},
		{"host name", entry("a1", "localhost", 24001), ""},
		{"unspecified", entry("a1", "0.0.0.0", 24001), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ok, refused := Filter([]*consul.ServiceEntry{c.entry}, set)
			if c.alloc == "" {
				if len(ok) != 0 || len(refused) != 1 {
					t.Fatalf("accepted %v, refused %v; want it refused", ok, refused)
				}
				want := c.entry.Service.Address
				if want == "" {
					want = c.entry.Node.Address
				}
				if !strings.HasPrefix(refused[0].String(), want) && !strings.HasPrefix(refused[0].String(), "["+want) {
					t.Errorf("refused %s, want %s", refused[0], want)
				}
				return
			}
			if len(ok) != 1 || ok[0].AllocID != c.alloc || len(refused) != 0 {
				t.Fatalf("accepted %v, refused %v; want %s accepted", ok, refused, c.alloc)
			}
		})
	}
}

func TestBuild(t *testing.T) {
	w := world()
	got := Build(w.allocs, ns, job, label)
	want := Set{
		netip.MustParseAddrPort("10.0.0.1:24001"): "a1",
		netip.MustParseAddrPort("10.0.0.2:24002"): "a2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("set %v, want %v", got, want)
	}
	if got := Build(w.allocs, ns, job, "http"); len(got) != 2 || got[netip.MustParseAddrPort("10.0.0.1:24002")] != "a1" {
		t.Errorf("with label http: %v", got)
	}
	if got := Build(w.allocs, ns, "", label); len(got) != 0 {
		t.Errorf("empty job ID verified %v", got)
	}
	wild := alloc("a7", ns, job, nomad.AllocClientStatusRunning, "0.0.0.0", 24007, false)
	if got := Build([]*nomad.Allocation{wild}, ns, job, label); len(got) != 0 {
		t.Errorf("unspecified host address verified: %v", got)
	}
	if got := Build(w.allocs, "default", job, label); len(got) != 0 {
		t.Errorf("default namespace verified %v", got)
	}
}

func TestVerifierCache(t *testing.T) {
	f := world()
	now := time.Unix(1000, 0)
	v := verifier(f)
	v.Now = func() time.Time { return now }
	ctx := context.Background()
	step := func(d time.Duration, index uint64, lists, reads int) {
		t.Helper()
		now = now.Add(d)
		if _, err := v.Peers(ctx, index); err != nil {
			t.Fatal(err)
		}
		if f.lists != lists || f.reads != reads {
			t.Fatalf("after +%v at index %d: %d lists, %d reads; want %d, %d", d, index, f.lists, f.reads, lists, reads)
		}
	}
	step(0, 5, 1, 2)                    // a1 and a2 read once
	step(500*time.Millisecond, 6, 1, 2) // index moved, but too soon
	step(time.Second, 6, 2, 2)          // index moved: list again, no reads
	step(5*time.Second, 6, 2, 2)        // same index, fresh enough
	step(10*time.Second, 6, 3, 2)       // too old
	for id, n := range f.readIDs {
		if n != 1 {
			t.Errorf("allocation %s read %d times", id, n)
		}
	}

	// A new allocation joins; a stopped one leaves the set.
	f.allocs = append(f.allocs, alloc("a6", ns, job, nomad.AllocClientStatusRunning, "10.0.0.6", 24006, false))
	f.allocs[0].ClientStatus = nomad.AllocClientStatusComplete
	now = now.Add(2 * time.Second)
	set, err := v.Peers(ctx, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := set[netip.MustParseAddrPort("10.0.0.1:24001")]; ok {
		t.Error("a stopped allocation is still verified")
	}
	if set[netip.MustParseAddrPort("10.0.0.6:24006")] != "a6" {
		t.Errorf("a new allocation is not verified: %v", set)
	}
	if _, ok := v.ports["a1"]; ok {
		t.Error("the stopped allocation's ports are still cached")
	}
}

func TestVerifierDenied(t *testing.T) {
	f := world()
	f.denied = true
	set, err := verifier(f).Peers(context.Background(), 1)
	if !errors.Is(err, ErrDenied) || set != nil {
		t.Fatalf("set %v, error %v; want nothing and ErrDenied", set, err)
	}
	ok, refused := Filter([]*consul.ServiceEntry{entry("a1", "10.0.0.1", 24001)}, set)
	if len(ok) != 0 || len(refused) != 1 {
		t.Errorf("with nothing verified: accepted %v", ok)
	}
}

// swapped answers every allocation read with another job's allocation,
// under its own ID or, with relabel, under the ID asked for.
type swapped struct {
	*fakeNomad
	relabel bool
}

func (s swapped) Alloc(ctx context.Context, namespace, id string) (*nomad.Allocation, error) {
	a, err := s.fakeNomad.Alloc(ctx, namespace, "x5")
	if err == nil && s.relabel {
		c := *a
		c.ID = id
		a = &c
	}
	return a, err
}

// Identity comes from the allocation read, not from the list.
func TestVerifierMismatchedAlloc(t *testing.T) {
	for _, relabel := range []bool{false, true} {
		f := world()
		v := verifier(f)
		v.Lister = swapped{f, relabel}
		set, err := v.Peers(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(set) != 0 {
			t.Errorf("relabel %v: verified %v from another job's allocation", relabel, set)
		}
	}
}

func TestResolve(t *testing.T) {
	set, err := verifier(world()).Peers(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	peers, _ := Filter([]*consul.ServiceEntry{entry("a1", "10.0.0.1", 24001), entry("a2", "10.0.0.2", 24002)}, set)
	calls := 0
	// What each host's port mapper answers, by name: a1's node on its
	// port, a2's on another port than Consul's.
	ports := map[string]int{"10.0.0.1/api-a1": 24001, "10.0.0.2/api-a2": 24999}
	r := &Resolver{
		NameOf: func(alloc string) string { return "api-" + alloc },
		Port: func(host netip.Addr, name string) (int, error) {
			calls++
			if host.String() == "10.0.0.3" {
				return 0, errors.New("unreachable")
			}
			return ports[host.String()+"/"+name], nil
		},
	}
	nodes, skipped := r.Resolve(peers, set, "self")
	if want := []string{"api-a1@10.0.0.1"}; !reflect.DeepEqual(nodes, want) {
		t.Fatalf("nodes %v, want %v", nodes, want)
	}
	if len(skipped) != 1 || skipped[0].Peer.AllocID != "a2" || !strings.Contains(skipped[0].Reason, "port 24999") {
		t.Errorf("skipped %v, want a2 for its port", skipped)
	}
	if calls != 2 {
		t.Errorf("%d port mapper calls, want one per peer", calls)
	}

	// A name the driver would never give is not asked about.
	calls = 0
	r.NameOf = func(string) string { return "bad name'),halt()" }
	if nodes, _ := r.Resolve(peers, set, "self"); len(nodes) != 0 || calls != 0 {
		t.Errorf("invalid names: nodes %v after %d calls", nodes, calls)
	}
	r.NameOf = func(alloc string) string { return "api-" + alloc }

	// The task's own allocation is left out.
	if nodes, _ := r.Resolve(peers, set, "a1"); len(nodes) != 0 {
		t.Errorf("own allocation resolved: %v", nodes)
	}

	// A peer not in the set is never asked about.
	calls = 0
	bogus := []Peer{{Addr: netip.MustParseAddrPort("10.0.0.1:24005"), AllocID: "x5"}}
	if nodes, _ := r.Resolve(bogus, set, "self"); len(nodes) != 0 || calls != 0 {
		t.Errorf("unverified peer: nodes %v after %d calls", nodes, calls)
	}
}

func TestSeen(t *testing.T) {
	s := &Seen{Max: 2}
	if !s.First("a") || s.First("a") || !s.First("b") || s.First("c") || s.First("c") {
		t.Error("Seen reports wrongly")
	}
}

func TestPolicy(t *testing.T) {
	if got, want := Policy(""), "namespace \"default\" {\n  capabilities = [\"read-job\"]\n}\n"; got != want {
		t.Errorf("policy %q, want %q", got, want)
	}
	got := PolicyCommand("shop", "my api", "web", "app", "beam-cluster.hcl")
	want := "nomad acl policy apply -namespace shop -job 'my api' -group web -task app beam-cluster-my-api beam-cluster.hcl"
	if got != want {
		t.Errorf("command\n%s\nwant\n%s", got, want)
	}
	if n := PolicyName(strings.Repeat("x", 300)); len(n) != 128 {
		t.Errorf("policy name of %d characters", len(n))
	}
}

// The verifier learns each live allocation's node name from its driver's
// start event, the newest one winning, so that peers with node names of
// their own (node_name = "app-${NOMAD_ALLOC_INDEX}") resolve.
func TestVerifierNodeNames(t *testing.T) {
	w := world()
	ev := func(node string) *nomad.TaskEvent {
		return &nomad.TaskEvent{Type: "Driver", Details: map[string]string{hotspec.DetailNode: node}}
	}
	for _, a := range w.allocs {
		if a.ID == "a1" {
			a.TaskStates = map[string]*nomad.TaskState{"node": {Events: []*nomad.TaskEvent{ev("app-0@10.0.0.1"), {Type: "Started"}, ev("app-7@10.0.0.1")}}}
		}
	}
	v := verifier(w)
	if _, err := v.Peers(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if n := v.NodeName("a1"); n != "app-7" {
		t.Errorf("NodeName(a1) = %q, want the newest start event's app-7", n)
	}
	if n := v.NodeName("a2"); n != "" {
		t.Errorf("NodeName(a2) = %q, want none", n)
	}
}
