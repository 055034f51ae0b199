//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"text/template"
)

// agentPorts are the loopback ports of one Consul and Nomad agent pair,
// and of its beam driver's port mapper.
type agentPorts struct {
	ConsulHTTP, ConsulSerfLAN, ConsulSerfWAN, ConsulServer int
	NomadHTTP, NomadRPC, NomadSerf                         int
	EPMD                                                   int
}

// newAgentPorts picks free ports for one agent pair.
func newAgentPorts() (agentPorts, error) {
	p, err := freePorts(8)
	if err != nil {
		return agentPorts{}, err
	}
	return agentPorts{ConsulHTTP: p[0], ConsulSerfLAN: p[1], ConsulSerfWAN: p[2], ConsulServer: p[3],
		NomadHTTP: p[4], NomadRPC: p[5], NomadSerf: p[6], EPMD: p[7]}, nil
}

// agentConfig is a Nomad agent's configuration, rendered by agentTemplate.
type agentConfig struct {
	Name, DataDir, PluginDir string
	Ports                    agentPorts
	// Server makes the agent the cluster's server; otherwise Servers
	// lists the servers' RPC addresses.
	Server  bool
	Servers []string
	// Bind and NetworkInterface are where the agent listens and what
	// address its tasks' ports get: 127.0.0.1 and lo unless set (a
	// bridge client's own address and veth).
	Bind, Advertise, NetworkInterface string
	// NodeClass, CNI, BridgeName and BridgeSubnet are for bridge clients.
	NodeClass                string
	CNI                      bool
	BridgeName, BridgeSubnet string
	CgroupParent             string
	DynamicMin, DynamicMax   int
	// Consul is the agent Nomad registers services with, with its token
	// and workload identity settings.
	Consul, ConsulToken, ConsulIdentity string
	// Beam is the beam plugin's config.
	Beam beamConfig
}

// beamConfig is the beam plugin's config in an agent.
type beamConfig struct {
	DataDir                   string
	EPMDPort                  int
	EPMDAddr                  string // empty: the plugin's default
	ConsulAddr, ConsulToken   string
	S3Addr                    string // empty: no S3 settings
	STSAddr                   string // empty: AWS's STS
	FileRoot                  string
	Lines                     []string // more settings, as HCL lines
	RawExec, SmallUnpackLimit bool
}

var agentTemplate = template.Must(template.New("agent").Funcs(template.FuncMap{"q": func(s string) string { return fmt.Sprintf("%q", s) }}).Parse(`
name       = {{q .Name}}
data_dir   = {{q .DataDir}}
plugin_dir = {{q .PluginDir}}
bind_addr  = {{q .Bind}}
log_level  = "DEBUG"

disable_update_check = true

# Task CPU and memory stats reach the API and the UI only with this on.
telemetry {
  publish_allocation_metrics = true
  collection_interval        = "1s"
}

ports {
  http = {{.Ports.NomadHTTP}}
  rpc  = {{.Ports.NomadRPC}}
  serf = {{.Ports.NomadSerf}}
}

advertise {
  http = {{q .Advertise}}
  rpc  = {{q .Advertise}}
  serf = {{q .Advertise}}
}
{{if .Server}}
server {
  enabled          = true
  bootstrap_expect = 1
}
{{end}}
client {
  enabled           = true
  network_interface = {{q .NetworkInterface}}
  min_dynamic_port  = {{.DynamicMin}}
  max_dynamic_port  = {{.DynamicMax}}
{{- if .Servers}}
  servers           = [{{range $i, $s := .Servers}}{{if $i}}, {{end}}{{q $s}}{{end}}]
{{- end}}
{{- if .CgroupParent}}
  cgroup_parent     = {{q .CgroupParent}}
{{- end}}
{{- if .NodeClass}}
  node_class        = {{q .NodeClass}}
{{- end}}
{{- if .CNI}}
  cni_path              = "/usr/lib/cni"
  bridge_network_name   = {{q .BridgeName}}
  bridge_network_subnet = {{q .BridgeSubnet}}
  # A node's own tools (bin/APP rpc and remote) reach it at the client's
  # address, through its own mapped port.
  bridge_network_hairpin_mode = true
{{- end}}
  options {
    # The environment sets AWS_CA_BUNDLE, which breaks these fingerprints.
    "fingerprint.denylist" = "env_aws,env_gce,env_azure,env_digitalocean"
  }
}

consul {
  address = {{q .Consul}}
  token   = {{q .ConsulToken}}
  {{.ConsulIdentity}}
}

acl {
  enabled = true
}

plugin "nomad-driver-beam" {
  config {
    data_dir       = {{q .Beam.DataDir}}
    epmd_port      = {{.Beam.EPMDPort}}
{{- if .Beam.EPMDAddr}}
    epmd_addr      = {{q .Beam.EPMDAddr}}
{{- end}}
    consul_address = {{q .Beam.ConsulAddr}}
    consul_token   = {{q .Beam.ConsulToken}}
{{- if .Beam.S3Addr}}

    s3_endpoint        = "http://{{.Beam.S3Addr}}"
    s3_path_style      = true
    s3_region          = "us-east-1"
    fetch_retry_window = "20s"
{{- end}}
{{- if .Beam.STSAddr}}
    sts_endpoint       = "http://{{.Beam.STSAddr}}"
{{- end}}
{{- if .Beam.FileRoot}}
    file_roots         = [{{q .Beam.FileRoot}}]
{{- end}}
{{- if .Beam.SmallUnpackLimit}}
    # Small enough that the hostile-release suite's gzip bomb is cheap.
    max_unpacked_mb    = 512
{{- end}}
{{- range .Beam.Lines}}
    {{.}}
{{- end}}
  }
}
{{if .Beam.RawExec}}
plugin "raw_exec" {
  config {
    enabled = true
  }
}
{{end}}`))

// render returns the agent's configuration file.
func (a agentConfig) render() string {
	if a.Bind == "" {
		a.Bind = "127.0.0.1"
	}
	if a.Advertise == "" {
		a.Advertise = "127.0.0.1"
	}
	if a.NetworkInterface == "" {
		a.NetworkInterface = "lo"
	}
	var b strings.Builder
	if err := agentTemplate.Execute(&b, a); err != nil {
		panic(err) // the template and its data are the test's own
	}
	return b.String()
}
