package peers

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/epmd"
)

// NamesFunc asks the port mapper on host which nodes it knows, by port.
type NamesFunc func(host netip.Addr) (map[int]string, error)

// Skipped is a verified peer that yields no node name, and why.
type Skipped struct {
	Peer   Peer
	Reason string
}

// Resolver turns verified peers into node names (name@address). It takes
// from a host's port mapper only the name registered on the verified
// port, whatever else the reply holds, and pins the first name seen for
// an allocation's port: a port mapper that changes it later is ignored,
// so the names a node is asked to connect to, each a permanent atom, are
// bounded by the job's allocations. A Resolver is not safe for concurrent
// use.
type Resolver struct {
	Names NamesFunc

	pins map[Peer]string
}

// Resolve returns the sorted node names of peers, leaving out the task's
// own allocation (self) and forgetting the pins of allocations no longer
// in set.
func (r *Resolver) Resolve(peers []Peer, set Set, self string) ([]string, []Skipped) {
	if r.pins == nil {
		r.pins = map[Peer]string{}
	}
	for p := range r.pins {
		if id, ok := set[p.Addr]; !ok || id != p.AllocID {
			delete(r.pins, p)
		}
	}
	replies := map[netip.Addr]map[int]string{}
	errs := map[netip.Addr]error{}
	var nodes []string
	var skipped []Skipped
	for _, p := range peers {
		if p.AllocID == self {
			continue
		}
		if id, ok := set[p.Addr]; !ok || id != p.AllocID {
			skipped = append(skipped, Skipped{p, "not in the verified set"})
			continue
		}
		host := p.Addr.Addr()
		byPort, asked := replies[host]
		if !asked {
			byPort, errs[host] = r.Names(host)
			replies[host] = byPort
		}
		if errs[host] != nil {
			skipped = append(skipped, Skipped{p, fmt.Sprintf("port mapper: %v", errs[host])})
			continue
		}
		name, ok := byPort[int(p.Addr.Port())]
		switch {
		case !ok:
			skipped = append(skipped, Skipped{p, "no node registered on the port"})
			continue
		case !epmd.ValidName(name):
			skipped = append(skipped, Skipped{p, fmt.Sprintf("invalid node name %q", name)})
			continue
		}
		if pinned, ok := r.pins[p]; ok && pinned != name {
			skipped = append(skipped, Skipped{p, fmt.Sprintf("node name changed from %q to %q", pinned, name)})
			continue
		}
		r.pins[p] = name
		nodes = append(nodes, name+"@"+host.String())
	}
	sort.Strings(nodes)
	return nodes, skipped
}

// Seen remembers up to Max keys, so that something is reported once per
// key without growing without bound.
type Seen struct {
	Max int
	m   map[string]struct{}
}

// First reports whether key is new, and remembers it while there is room.
// Once full, it reports false for every new key.
func (s *Seen) First(key string) bool {
	if _, ok := s.m[key]; ok || len(s.m) >= s.Max {
		return false
	}
	if s.m == nil {
		s.m = map[string]struct{}{}
	}
	s.m[key] = struct{}{}
	return true
}

var policyUnsafe = regexp.MustCompile(`[^A-Za-z0-9-]+`)

// PolicyName is a Nomad ACL policy name for a job's clustering policy.
func PolicyName(jobID string) string {
	name := "beam-cluster-" + strings.Trim(policyUnsafe.ReplaceAllString(jobID, "-"), "-")
	return strings.TrimSuffix(name[:min(len(name), 128)], "-")
}

// Policy is the minimal ACL policy that lets a workload identity list its
// job's allocations: read-job in its namespace.
func Policy(namespace string) string {
	return fmt.Sprintf("namespace %q {\n  capabilities = [\"read-job\"]\n}\n", normNamespace(namespace))
}

// PolicyCommand is the command that attaches the policy in file to one
// task's workload identity.
func PolicyCommand(namespace, jobID, group, task, file string) string {
	return strings.Join([]string{"nomad acl policy apply",
		"-namespace", shellQuote(normNamespace(namespace)), "-job", shellQuote(jobID),
		"-group", shellQuote(group), "-task", shellQuote(task),
		PolicyName(jobID), shellQuote(file)}, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_.,:/=@+-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
