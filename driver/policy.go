package driver

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
)

// Namespaces is a per-namespace block of the plugin config, such as
//
//	sources {
//	  namespace "team-a" { allow = ["s3://team-a-releases/"] }
//	  namespace "*"      { allow = ["https://artifacts.example.com/shared/"] }
//	}
//
// A namespace without a block of its own gets the "*" block's, if any,
// and otherwise nothing.
//
// The values are pointers: decoded into a map of structs, msgpack reuses
// one struct, and every namespace would get the last one's list.
type Namespaces struct {
	Namespace map[string]*NamespaceRule `codec:"namespace"`
}

// NamespaceRule is one namespace's part of a Namespaces block.
type NamespaceRule struct {
	Allow []string `codec:"allow"`
}

// namespacesSpec is the HCL of a Namespaces block called name.
func namespacesSpec(name string) *hclspec.Spec {
	return hclspec.NewBlock(name, false, hclspec.NewObject(map[string]*hclspec.Spec{
		"namespace": hclspec.NewBlockMap("namespace", []string{"name"}, hclspec.NewObject(map[string]*hclspec.Spec{
			"allow": hclspec.NewAttr("allow", "list(string)", true),
		})),
	}))
}

// rule returns ns's rule and where it is written, for errors.
func (n *Namespaces) rule(block, ns string) (NamespaceRule, string) {
	if ns == "" {
		ns = "default"
	}
	if r, ok := n.Namespace[ns]; ok && r != nil {
		return *r, fmt.Sprintf("%s { namespace %q }", block, ns)
	}
	if r, ok := n.Namespace["*"]; ok && r != nil {
		return *r, fmt.Sprintf(`%s { namespace "*" }`, block)
	}
	return NamespaceRule{}, fmt.Sprintf("%s (which has no block for namespace %q)", block, ns)
}

// AllowAny, alone in a namespace's allow list, lets its tasks fetch any
// source, as without a sources block: for a namespace the operator trusts
// with the client's network and credentials.
const AllowAny = "*"

// sourcePolicies parses the sources block into one policy per namespace
// it names, or says which prefix is wrong.
func sourcePolicies(n *Namespaces) (map[string]*fetch.Policy, error) {
	if n == nil {
		return nil, nil
	}
	out := map[string]*fetch.Policy{}
	names := make([]string, 0, len(n.Namespace))
	for ns := range n.Namespace {
		names = append(names, ns)
	}
	sort.Strings(names)
	for _, ns := range names {
		p := &fetch.Policy{Where: fmt.Sprintf("sources { namespace %q }", ns)}
		rule := n.Namespace[ns]
		if rule == nil {
			rule = &NamespaceRule{}
		}
		if slices.Contains(rule.Allow, AllowAny) {
			// The operator trusts this namespace with the plugin's
			// network and credentials: no policy.
			out[ns] = nil
			continue
		}
		for i, a := range rule.Allow {
			pr, err := fetch.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("sources { namespace %q } allow[%d]: %w", ns, i, err)
			}
			p.Allow = append(p.Allow, pr)
		}
		out[ns] = p
	}
	return out, nil
}

// sourcePolicy returns the source policy of a task's namespace: nil when
// the plugin config has no sources block, and one that allows nothing for
// a namespace the block does not name (nor "*").
func (c *Config) sourcePolicy(ns string) *fetch.Policy {
	if c.Sources == nil {
		return nil
	}
	if ns == "" {
		ns = "default"
	}
	if p, ok := c.policies[ns]; ok {
		return p
	}
	if p, ok := c.policies["*"]; ok {
		return p
	}
	_, where := c.Sources.rule("sources", ns)
	return &fetch.Policy{Where: where}
}

// agentAddrs returns the literal IP addresses of the agents the plugin
// talks to, which a source may reach only where a prefix names them. The
// client's own addresses are refused anyway (fetch's guard).
func (c *Config) agentAddrs() []netip.Addr {
	var out []netip.Addr
	for _, a := range []string{c.ConsulAddress} {
		if a == "" {
			continue
		}
		if u, err := url.Parse(a); err == nil && u.Host != "" {
			a = u.Host
		}
		if h, _, err := net.SplitHostPort(a); err == nil {
			a = h
		}
		if ip, err := netip.ParseAddr(strings.Trim(a, "[]")); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

// checkNodeName refuses a node_name that the plugin's node_names block
// does not allow for the task's namespace: names are per client, and a
// tenant must not take another's fixed name first. Without the block,
// any name goes.
func (c *Config) checkNodeName(cfg *drivers.TaskConfig, name string) error {
	if c.NodeNames == nil || name == "" {
		return nil
	}
	short, _, _ := strings.Cut(name, "@")
	rule, where := c.NodeNames.rule("node_names", cfg.Namespace)
	for _, pat := range rule.Allow {
		if ok, _ := path.Match(pat, short); ok {
			return nil
		}
	}
	allowed := "none"
	if len(rule.Allow) > 0 {
		allowed = strings.Join(rule.Allow, ", ")
	}
	return fmt.Errorf("node_name %q is not one the plugin's %s allows (%s); pick a name that matches, "+
		"or ask the operator to add a pattern", short, where, allowed)
}

// validatePolicies checks the sources and node_names blocks.
func (c *Config) validatePolicies() error {
	p, err := sourcePolicies(c.Sources)
	if err != nil {
		return err
	}
	c.policies = p
	if c.NodeNames != nil {
		for ns, r := range c.NodeNames.Namespace {
			if r == nil {
				continue
			}
			for i, pat := range r.Allow {
				if _, err := path.Match(pat, ""); err != nil || pat == "" {
					return fmt.Errorf("node_names { namespace %q } allow[%d] = %q is not a pattern such as \"team-a-*\"", ns, i, pat)
				}
			}
		}
	}
	return nil
}
