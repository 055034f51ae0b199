// Command nomad-driver-beam serves the beam task driver to a Nomad client.
//
// Put the binary in the client's plugin_dir and configure it with
//
//	plugin "nomad-driver-beam" {
//	  config {
//	    data_dir = "/var/lib/nomad-driver-beam"
//	  }
//	}
//
// Jobspecs then use driver = "beam".
package main

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins"

	// Registers the executor subcommand: the driver re-executes this
	// binary as the executor that supervises each node.
	_ "github.com/hashicorp/nomad/drivers/shared/executor"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver"
)

func main() {
	plugins.Serve(func(log hclog.Logger) interface{} {
		return driver.New(context.Background(), log)
	})
}
