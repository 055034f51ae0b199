package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
)

const statusHelp = `Usage: beamctl status [options]

  Shows one row per allocation of a job's beam task: the BEAM node and
  the Nomad client it runs on, the base release version and the hot
  version a hot upgrade installed, Consul health, crash restarts, uptime,
  the last deploy (full or hot) with its result, and the cluster peers the
  node sees (asked of each node through Nomad's exec).

Example:

  beamctl status -job hello
  beamctl status -job hello -json | jq '.[] | select(.health != "passing")'

Options:
`

func runStatus(args []string, stdout, stderr io.Writer) int {
	var f jobFlags
	var asJSON bool
	fs := newFlags("status", statusHelp, stderr)
	f.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if f.job == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "beamctl status: missing -job; see beamctl status -help")
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := f.cluster(ctx)
	if err != nil {
		fail(stderr, "status", err)
		return exitCluster
	}
	rows, err := c.Statuses(ctx)
	if err != nil {
		fail(stderr, "status", err)
		return exitCluster
	}
	if asJSON {
		if rows == nil {
			rows = []rollout.Status{}
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rows)
		return exitOK
	}
	writeStatus(stdout, rows)
	return exitOK
}

// writeStatus prints the status table.
func writeStatus(w io.Writer, rows []rollout.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALLOC\tNAME\tNODE\tCLIENT\tBASE\tHOT\tHEALTH\tRESTARTS\tUPTIME\tLAST DEPLOY\tPEERS")
	for _, r := range rows {
		id := r.Alloc
		if len(id) > 8 {
			id = id[:8]
		}
		last := r.LastDeploy
		if r.LastResult != "" {
			last += " (" + r.LastResult + ")"
		}
		peers := strconv.Itoa(len(r.Peers))
		if len(r.Peers) > 0 {
			peers += " (" + strings.Join(r.Peers, " ") + ")"
		}
		if r.PeersError != "" {
			peers = "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", id, r.Name, dash(r.Node), dash(r.Client),
			dash(r.Base), dash(r.Hot), r.Health, r.Restarts, uptime(r.Uptime), dash(last), peers)
	}
	_ = tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func uptime(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
