// Package peers decides which instances of a Consul service a node may be
// clustered with.
//
// Consul cannot be the authority: any workload whose token may write a
// service name can register a passing instance under it, with any address,
// port, ID and metadata. Dialing such an instance hands it a distribution
// handshake (a cookie digest), and a port mapper it controls can feed the
// node an endless stream of node names (atoms are never freed). So an
// instance is used only when Nomad vouches for it: its exact address and
// port must be the dist port of a running allocation of the same job in
// the same namespace, as read from the Nomad API with the task's own
// workload identity.
package peers

import (
	"errors"
	"net"
	"net/netip"
	"sort"
	"strconv"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"
)

// ErrDenied is what a Lister wraps when Nomad refuses the lookup (HTTP
// 403): the task's identity lacks the read-job capability.
var ErrDenied = errors.New("permission denied")

// Alloc is one verified allocation and the host addresses of its
// distribution port.
type Alloc struct {
	ID    string
	Addrs []netip.AddrPort
}

// Set maps each verified host address and port to the allocation that
// holds it.
type Set map[netip.AddrPort]string

// Live reports whether an allocation with these fields belongs to the job
// jobID in namespace and is running and meant to run.
func Live(namespace, jobID, allocNamespace, allocJob, clientStatus, desiredStatus string) bool {
	return jobID != "" &&
		normNamespace(allocNamespace) == normNamespace(namespace) &&
		allocJob == jobID &&
		clientStatus == nomad.AllocClientStatusRunning &&
		desiredStatus == nomad.AllocDesiredStatusRun
}

// normNamespace maps the empty namespace to "default", as Nomad does.
func normNamespace(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// Ports returns the host addresses of the allocated port labelled label,
// from both places Nomad records group ports: Shared.Ports and the
// reserved and dynamic ports of Shared.Networks. An address that is not a
// plain, specified IP is left out: it cannot be matched.
func Ports(res *nomad.AllocatedResources, label string) []netip.AddrPort {
	if res == nil || label == "" {
		return nil
	}
	seen := map[netip.AddrPort]bool{}
	var out []netip.AddrPort
	add := func(ip string, port int) {
		ap, ok := hostPort(ip, port)
		if ok && !seen[ap] {
			seen[ap] = true
			out = append(out, ap)
		}
	}
	for _, p := range res.Shared.Ports {
		if p.Label == label {
			add(p.HostIP, p.Value)
		}
	}
	for _, n := range res.Shared.Networks {
		if n == nil {
			continue
		}
		for _, ports := range [][]nomad.Port{n.ReservedPorts, n.DynamicPorts} {
			for _, p := range ports {
				if p.Label == label {
					add(n.IP, p.Value)
				}
			}
		}
	}
	return out
}

// hostPort parses an address and port into a comparable form: IPv4 in
// IPv6 is unmapped, and zones, unspecified addresses and ports outside
// 1-65535 are refused.
func hostPort(ip string, port int) (netip.AddrPort, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.IsUnspecified() || port < 1 || port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

// Allocs returns the live allocations of jobID in namespace among allocs,
// each with the host addresses of its port labelled label.
func Allocs(allocs []*nomad.Allocation, namespace, jobID, label string) []Alloc {
	var out []Alloc
	for _, a := range allocs {
		if a == nil || !Live(namespace, jobID, a.Namespace, a.JobID, a.ClientStatus, a.DesiredStatus) {
			continue
		}
		if addrs := Ports(a.AllocatedResources, label); len(addrs) > 0 {
			out = append(out, Alloc{ID: a.ID, Addrs: addrs})
		}
	}
	return out
}

// Build returns the verified set: the dist-port addresses of the live
// allocations of jobID in namespace. Should two allocations claim one
// address, which Nomad does not allow, the first keeps it.
func Build(allocs []*nomad.Allocation, namespace, jobID, label string) Set {
	set := Set{}
	for _, a := range Allocs(allocs, namespace, jobID, label) {
		for _, ap := range a.Addrs {
			if _, taken := set[ap]; !taken {
				set[ap] = a.ID
			}
		}
	}
	return set
}

// Peer is a Consul instance that a verified allocation backs.
type Peer struct {
	Addr    netip.AddrPort
	AllocID string
}

// Refused is a Consul instance that no verified allocation backs.
type Refused struct {
	ServiceID string
	Addr      string
	Port      int
}

// String is the instance's address and port.
func (r Refused) String() string { return net.JoinHostPort(r.Addr, strconv.Itoa(r.Port)) }

// Filter splits Consul entries into the peers that set vouches for and
// the rest. An entry's address is its service address, else its node's
// address; it must be an IP, equal to a verified one with the same port.
// Nothing else in the entry (ID, tags, metadata) counts.
func Filter(entries []*consul.ServiceEntry, set Set) ([]Peer, []Refused) {
	var ok []Peer
	var refused []Refused
	seen := map[netip.AddrPort]bool{}
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		addr := e.Service.Address
		if addr == "" && e.Node != nil {
			addr = e.Node.Address
		}
		ap, valid := hostPort(addr, e.Service.Port)
		id, found := set[ap]
		if !valid || !found {
			refused = append(refused, Refused{ServiceID: e.Service.ID, Addr: addr, Port: e.Service.Port})
			continue
		}
		if !seen[ap] {
			seen[ap] = true
			ok = append(ok, Peer{Addr: ap, AllocID: id})
		}
	}
	sort.Slice(ok, func(i, j int) bool { return ok[i].Addr.Compare(ok[j].Addr) < 0 })
	return ok, refused
}
