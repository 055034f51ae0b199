// Command beamctl is the job tooling for the beam Nomad driver.
//
//	beamctl upgrade -job hello -version 0.2.0 -source s3://bucket/hello-0.2.0.tar.gz
//
// It reads NOMAD_ADDR, NOMAD_TOKEN, NOMAD_NAMESPACE, NOMAD_CACERT and the
// other NOMAD_* variables like the nomad CLI, and CONSUL_HTTP_ADDR and
// CONSUL_HTTP_TOKEN like the consul CLI.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes that scripts can rely on.
const (
	exitOK      = 0
	exitFailed  = 1 // the operation ran and failed (reverted if it could)
	exitUsage   = 2 // bad flags or arguments
	exitCluster = 3 // Nomad or Consul cannot be reached or refused
)

type command struct {
	synopsis string
	run      func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"upgrade":  {"hot-upgrade a job's allocations one at a time (the hot canary)", runUpgrade},
	"deploy":   {"deploy a full release and follow the Nomad deployment to its end", runDeploy},
	"loadtest": {"send load through Consul-following balancers, optionally while a command (a deploy) runs", runLoadtest},
	"logs":     {"print or follow the logs of a job's allocations, prefixed with node names", runLogs},
	"publish":  {"upload a release tarball and its .sha256 to S3, GCS or a directory", runPublish},
	"relup":    {"build a hot-upgrade package (appups and relup) from two release tarballs", runRelup},
	"shell":    {"open a remote shell (IEx or the Erlang shell) on an allocation's node", runShell},
	"status":   {"show every allocation of a job: versions, health, restarts, last deploy", runStatus},
	"ship":     {"ship a release: hot when the package allows, else full; with fallback, pre-commands and history", runShip},
	"follow":   {"pull mode: watch a DeployEx pointer (versions/APP/ENV/current.json) and ship each new version", runFollow},
	"history":  {"show a job's rollouts: version, path, result, when and by whom", runHistory},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "beamctl: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	return c.run(args[1:], stdout, stderr)
}

// newFlags returns a command's flag set, whose -help prints help and the
// flags.
func newFlags(name, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, help)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses a command's flags. When it returns false, the command ends
// with the exit code: 0 after -help, 2 for bad flags.
func parse(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// fail prints a command's error with what to do about the usual causes.
func fail(w io.Writer, cmd string, err error) {
	msg := err.Error()
	fmt.Fprintf(w, "beamctl %s: %s\n", cmd, msg)
	switch low := strings.ToLower(msg); {
	case strings.Contains(low, "permission denied") || strings.Contains(low, "403"):
		fmt.Fprintln(w, "  hint: set NOMAD_TOKEN (or CONSUL_HTTP_TOKEN) to a token whose policy allows this")
	case strings.Contains(low, "connection refused") || strings.Contains(low, "no such host"):
		fmt.Fprintln(w, "  hint: check -address or NOMAD_ADDR (and CONSUL_HTTP_ADDR)")
	case strings.Contains(low, "credentials") || strings.Contains(low, "could not find default"):
		fmt.Fprintln(w, "  hint: give the store credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE for S3, "+
			"GOOGLE_APPLICATION_CREDENTIALS for GCS")
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: beamctl <command> [options]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].synopsis)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run beamctl <command> -help for a command's options.")
}
