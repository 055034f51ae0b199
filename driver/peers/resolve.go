package peers

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/epmd"
)

// PortFunc asks the port mapper on host for the distribution port of the
// node called name (PORT_PLEASE2); 0 means it knows no such node.
type PortFunc func(host netip.Addr, name string) (int, error)

// Skipped is a verified peer that yields no node name, and why.
type Skipped struct {
	Peer   Peer
	Reason string
}

// Resolver turns verified peers into node names (name@address). The name
// is not the port mapper's to give: it is the one the driver gives the
// allocation's node (NameOf, from its allocation ID), and the peer's port
// mapper is asked only where that name listens, which must be the
// verified port. So the names a node is asked to connect to, each a
// permanent atom, are bounded by the job's allocations, and no port
// mapper is asked for the list of every node of its host.
type Resolver struct {
	// Port looks a name up on a host's port mapper.
	Port PortFunc
	// NameOf returns the node name (without @host) of an allocation.
	NameOf func(allocID string) string
}

// Resolve returns the sorted node names of peers, leaving out the task's
// own allocation (self).
func (r *Resolver) Resolve(peers []Peer, set Set, self string) ([]string, []Skipped) {
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
		name := r.NameOf(p.AllocID)
		if !epmd.ValidName(name) {
			skipped = append(skipped, Skipped{p, fmt.Sprintf("invalid node name %q", name)})
			continue
		}
		host := p.Addr.Addr()
		port, err := r.Port(host, name)
		switch {
		case err != nil:
			skipped = append(skipped, Skipped{p, fmt.Sprintf("port mapper: %v", err)})
			continue
		case port == 0:
			skipped = append(skipped, Skipped{p, fmt.Sprintf("no node %s registered", name)})
			continue
		case port != int(p.Addr.Port()):
			skipped = append(skipped, Skipped{p, fmt.Sprintf("node %s listens on port %d, not the allocation's %d", name, port, p.Addr.Port())})
			continue
		}
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
