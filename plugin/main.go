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
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins"

	// Registers the executor subcommand: the driver re-executes this
	// binary as the executor that supervises each node.
	_ "github.com/hashicorp/nomad/drivers/shared/executor"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/sandbox"
)

func main() {
	// The executor runs this binary as the sandbox around every program
	// of a task: see package sandbox.
	if len(os.Args) > 1 && os.Args[1] == sandbox.Command {
		sandbox.Main(os.Args[2:])
	}
	plugins.Serve(func(log hclog.Logger) interface{} {
		return driver.New(context.Background(), log)
	})
}
