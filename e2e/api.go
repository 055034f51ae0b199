//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"time"

	consul "github.com/hashicorp/consul/api"
	nomadapi "github.com/hashicorp/nomad/api"
)

// agentTimeout bounds each call through the agents' API clients: a hung
// agent fails a wait's attempt instead of stalling it.
const agentTimeout = 10 * time.Second

// newNomadAPI returns a client of the Nomad agent at addr (http://host:port)
// that sends token, if any, with every request.
func newNomadAPI(addr, token string) (*nomadapi.Client, error) {
	return nomadapi.NewClient(&nomadapi.Config{Address: addr, SecretID: token,
		HttpClient: &http.Client{Timeout: agentTimeout}})
}

// newConsulAPI returns a client of the Consul agent at addr (host:port or
// http://host:port) that sends token with every request. Its calls time
// out after timeout; 0 is none, for blocking queries, which outlast
// agentTimeout.
func newConsulAPI(addr, token string, timeout time.Duration) (*consul.Client, error) {
	config := &consul.Config{Address: addr, Scheme: "http", Token: token}
	if timeout > 0 {
		config.HttpClient = &http.Client{Timeout: timeout}
	}
	return consul.NewClient(config)
}

// consulReadToken creates a Consul token that may only read services and
// nodes: what the driver's clustering needs.
func (c *Cluster) consulReadToken() (string, error) {
	policy, _, err := c.ConsulAPI.ACL().PolicyCreate(&consul.ACLPolicy{
		Name:  "beam-driver",
		Rules: `service_prefix "" { policy = "read" } node_prefix "" { policy = "read" }`,
	}, nil)
	if err != nil {
		return "", fmt.Errorf("consul policy: %w", err)
	}
	token, _, err := c.ConsulAPI.ACL().TokenCreate(&consul.ACLToken{
		Description: "beam driver: read services",
		Policies:    []*consul.ACLTokenPolicyLink{{ID: policy.ID}},
	}, nil)
	if err != nil {
		return "", fmt.Errorf("consul token: %w", err)
	}
	return token.SecretID, nil
}

// driverHealthy says whether the Nomad node has a healthy beam driver.
func (c *Cluster) driverHealthy(nodeID string) (bool, error) {
	node, _, err := c.NomadAPI.Nodes().Info(nodeID, nil)
	if err != nil {
		return false, err
	}
	d := node.Drivers["beam"]
	return d != nil && d.Healthy, nil
}
