//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// client is a Nomad client agent beyond the server's own, with the Consul
// client agent it registers services in.
type client struct {
	name          string
	consul, nomad *exec.Cmd
	consulAddr    string
	consulAPI     *consul.Client // its Consul agent's, with the management token
}

// addClient starts Consul and Nomad client agents number i, on ports of
// their own, joined to the Consul server's LAN pool and the Nomad server's
// RPC port.
func (c *Cluster) addClient(i, from, to int, readToken string) error {
	p, err := newAgentPorts()
	if err != nil {
		return err
	}
	cl := &client{name: fmt.Sprintf("client-%d", i), consulAddr: fmt.Sprintf("127.0.0.1:%d", p.ConsulHTTP)}
	c.clients = append(c.clients, cl)
	cl.consul = exec.Command(filepath.Join(c.Root, "bin", "consul"), "agent",
		"-node", fmt.Sprintf("consul-%d", i), "-data-dir", filepath.Join(c.Dir, fmt.Sprintf("consul-%d", i)),
		"-bind", "127.0.0.1", "-client", "127.0.0.1", "-retry-join", fmt.Sprintf("127.0.0.1:%d", c.ports.ConsulSerfLAN),
		"-http-port", strconv.Itoa(p.ConsulHTTP), "-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-serf-lan-port", strconv.Itoa(p.ConsulSerfLAN), "-serf-wan-port", strconv.Itoa(p.ConsulSerfWAN),
		"-server-port", strconv.Itoa(p.ConsulServer), "-hcl", "disable_update_check = true",
		"-hcl", fmt.Sprintf(`acl { enabled = true, default_policy = "deny", tokens { agent = %q } }`, c.ConsulToken))
	if err := c.startLogged(cl.consul, fmt.Sprintf("consul-%d.log", i)); err != nil {
		return err
	}
	if cl.consulAPI, err = newConsulAPI(cl.consulAddr, c.ConsulToken, agentTimeout); err != nil {
		return err
	}
	err = waitFor(60*time.Second, func() error {
		nodes, _, err := cl.consulAPI.Catalog().Nodes(nil)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Node == fmt.Sprintf("consul-%d", i) {
				return nil
			}
		}
		return fmt.Errorf("consul-%d has not joined yet", i)
	})
	if err != nil {
		return fmt.Errorf("consul client agent %d: %w\n%s", i, err, c.tail(fmt.Sprintf("consul-%d.log", i)))
	}

	config := filepath.Join(c.Dir, fmt.Sprintf("nomad-%d.hcl", i))
	a := c.loopbackAgent(cl.name, filepath.Join(c.Dir, fmt.Sprintf("nomad-%d", i)), filepath.Join(c.Dir, fmt.Sprintf("beam-%d", i)),
		p, from, to, readToken)
	a.Servers = []string{fmt.Sprintf("127.0.0.1:%d", c.ports.NomadRPC)}
	// Each client gets its own cgroup parent, so that neither manages the
	// other's tasks' cgroups.
	a.CgroupParent = fmt.Sprintf("nomad-client-%d.slice", i)
	if err := os.WriteFile(config, []byte(a.render()), 0o644); err != nil {
		return err
	}
	// Nomad would make its data_dir 0700; tasks run as nobody and must
	// reach their directories below it.
	if err := os.MkdirAll(filepath.Join(c.Dir, fmt.Sprintf("nomad-%d", i)), 0o711); err != nil {
		return err
	}
	cl.nomad = exec.Command(filepath.Join(c.Root, "bin", "nomad"), "agent", "-config", config)
	cl.nomad.Env = append(append(os.Environ(), "AWS_CA_BUNDLE="), c.stores.Env()...)
	return c.startLogged(cl.nomad, fmt.Sprintf("nomad-%d.log", i))
}

// consulAgentToken gives the Nomad agents a Consul token of their own, not
// a management token, and has Nomad register each service with a token it
// gets from Consul for the service's workload identity: the production
// setup of `nomad setup consul`. consulAuthMethod completes it
// once Nomad serves the keys that sign workload identities.
func (c *Cluster) consulAgentToken() error {
	policy, _, err := c.ConsulAPI.ACL().PolicyCreate(&consul.ACLPolicy{
		Name: "nomad-agents",
		// Nomad's documented minimum for clients: they register services
		// with tokens from workload identities, but deregister them with
		// their own.
		Rules: `agent_prefix "" { policy = "read" }
node_prefix "" { policy = "write" }
service_prefix "" { policy = "write" }`,
	}, nil)
	if err != nil {
		return fmt.Errorf("consul policy: %w", err)
	}
	token, _, err := c.ConsulAPI.ACL().TokenCreate(&consul.ACLToken{
		Description: "Nomad agents",
		Policies:    []*consul.ACLTokenPolicyLink{{ID: policy.ID}},
	}, nil)
	if err != nil {
		return fmt.Errorf("consul token: %w", err)
	}
	c.agentToken = token.SecretID
	c.consulIdentity = `service_identity {
    aud = ["consul.io"]
    ttl = "1h"
  }
  task_identity {
    aud = ["consul.io"]
    ttl = "1h"
  }`
	return nil
}

// consulAuthMethod lets Consul trust Nomad's workload identities: a JWT
// auth method on the Nomad server's keys, and a binding rule that makes a
// service's identity a Consul service identity.
func (c *Cluster) consulAuthMethod() error {
	_, _, err := c.ConsulAPI.ACL().AuthMethodCreate(&consul.ACLAuthMethod{
		Name: "nomad-workloads", Type: "jwt", DisplayName: "Nomad workload identities",
		Config: map[string]any{
			"JWKSURL":          c.NomadAddr + "/.well-known/jwks.json",
			"JWTSupportedAlgs": []string{"RS256", "ES256"},
			"BoundAudiences":   []string{"consul.io"},
			"ClaimMappings": map[string]string{
				"nomad_namespace": "nomad_namespace", "nomad_job_id": "nomad_job_id",
				"nomad_task": "nomad_task", "nomad_service": "nomad_service",
			},
		},
	}, nil)
	if err != nil {
		return fmt.Errorf("consul auth method: %w", err)
	}
	_, _, err = c.ConsulAPI.ACL().BindingRuleCreate(&consul.ACLBindingRule{
		AuthMethod: "nomad-workloads", BindType: consul.BindingRuleBindTypeService,
		BindName: "${value.nomad_service}", Selector: `"nomad_service" in value`,
	}, nil)
	if err != nil {
		return fmt.Errorf("consul binding rule: %w", err)
	}
	// A task with a consul block gets a token that reads services and
	// nodes: what the driver's clustering needs, with the task's own
	// token (secrets/consul_token), never the plugin's.
	_, _, err = c.ConsulAPI.ACL().RoleCreate(&consul.ACLRole{
		Name: "nomad-tasks", Description: "Nomad tasks: read services",
		Policies: []*consul.ACLRolePolicyLink{{Name: "beam-driver"}},
	}, nil)
	if err != nil {
		return fmt.Errorf("consul role: %w", err)
	}
	_, _, err = c.ConsulAPI.ACL().BindingRuleCreate(&consul.ACLBindingRule{
		AuthMethod: "nomad-workloads", BindType: consul.BindingRuleBindTypeRole,
		BindName: "nomad-tasks", Selector: `"nomad_task" in value and "nomad_service" not in value`,
	}, nil)
	if err != nil {
		return fmt.Errorf("consul task binding rule: %w", err)
	}
	return nil
}

// waitNodes waits until every Nomad client is ready with a healthy beam
// driver.
func (c *Cluster) waitNodes() error {
	err := waitFor(90*time.Second, func() error {
		nodes, _, err := c.NomadAPI.Nodes().List(nil)
		if err != nil {
			return err
		}
		ready := 0
		for _, n := range nodes {
			if n.Status != "ready" {
				continue
			}
			healthy, err := c.driverHealthy(n.ID)
			if err != nil {
				return err
			}
			if healthy {
				ready++
			}
		}
		if ready < c.nodes {
			return fmt.Errorf("%d of %d Nomad clients ready with a healthy beam driver", ready, c.nodes)
		}
		return nil
	})
	if err != nil {
		logs := c.tail("nomad.log")
		for _, cl := range c.clients {
			logs += "\n" + cl.name + ":\n" + c.tail("nomad-"+strings.TrimPrefix(cl.name, "client-")+".log")
		}
		return fmt.Errorf("nomad: %w\n%s", err, logs)
	}
	return nil
}
