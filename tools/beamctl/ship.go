package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/ship"
)

const shipHelp = `Usage: beamctl ship -job JOB -source URL [-sha256 SUM] [options]

  Ships a release to a job by the path the package allows, and says which
  and why before it acts:

  - hot: when the package's relup goes up from the version every
    allocation runs, with no emulator restart: the hot canary of beamctl
    upgrade, one allocation at a time, each gated on its health;
  - full: otherwise: the registered job's release block (and
    pre_commands) point at the package, and the Nomad deployment (canaries
    and auto-revert as the job's update block says) is followed to its end.

  If the hot canary fails, the allocations it upgraded go back; once every
  one is back, the same release goes out as a full deployment (unless
  -no-fallback). -hot and -full force a path; -hot is refused with the
  reason when the package cannot go hot.

  -pre-command runs a command (a migration) once: in the hot canary's
  first allocation with the new code before it installs, or as the job's
  pre_commands on the full path.

  Every rollout is recorded in the job's history (beamctl history). A
  version whose rollout failed on every path it had is refused until
  -force, so that a loop in CI cannot ship it again and again.

Example:

  beamctl ship -job shop -source s3://releases/dist/shop/shop-1.4.3.tar.gz \
    -pre-command 'eval Shop.Release.migrate()'

Options:
`

func runShip(args []string, stdout, stderr io.Writer) int {
	var f jobFlags
	var source, sum, endpoint string
	var hot, full, noFallback, force, pathStyle bool
	var pre listFlag
	var timeout time.Duration
	fs := newFlags("ship", shipHelp, stderr)
	f.register(fs)
	fs.StringVar(&source, "source", "", "where the release tarball is: s3://, gs://, https://, file:// (required)")
	fs.StringVar(&sum, "sha256", "", "the tarball's sha256 (default: read SOURCE.sha256)")
	fs.BoolVar(&hot, "hot", false, "force the hot path")
	fs.BoolVar(&full, "full", false, "force the full path")
	fs.BoolVar(&noFallback, "no-fallback", false, "do not deploy in full after a failed hot canary")
	fs.BoolVar(&force, "force", false, "ship a version whose last rollout failed on every path")
	fs.Var(&pre, "pre-command", `a command to run once with the new code (repeatable): "eval EXPR", or a program and its arguments`)
	fs.DurationVar(&timeout, "step-timeout", 2*time.Minute, "how long one allocation may take to hot-upgrade and pass its gate")
	fs.StringVar(&endpoint, "s3-endpoint", os.Getenv("AWS_ENDPOINT_URL_S3"), "endpoint of an S3-compatible store")
	fs.BoolVar(&pathStyle, "s3-path-style", false, "path-style S3 addressing, for S3-compatible stores")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if f.job == "" || source == "" || fs.NArg() > 0 || (hot && full) {
		fmt.Fprintln(stderr, "beamctl ship: give -job and -source (and at most one of -hot and -full); see beamctl ship -help")
		return exitUsage
	}
	cmds, err := preCommands(pre)
	if err != nil {
		fmt.Fprintf(stderr, "beamctl ship: %v\n", err)
		return exitUsage
	}
	o := ship.Options{NoFallback: noFallback, PreCommands: cmds, StepTimeout: timeout, Rollout: rolloutID(), AllowRefused: force}
	if hot {
		o.Force = ship.Hot
	} else if full {
		o.Force = ship.Full
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return shipOnce(ctx, f, source, sum, fetch.Config{S3Endpoint: endpoint, S3PathStyle: pathStyle}, o, stdout, stderr)
}

// shipOnce inspects the package at source and ships it; follow calls it
// for each new version.
func shipOnce(ctx context.Context, f jobFlags, source, sum string, fc fetch.Config, o ship.Options, stdout, stderr io.Writer) int {
	stdout = printableWriter{stdout}
	c, err := f.cluster(ctx)
	if err != nil {
		fail(stderr, "ship", err)
		return exitCluster
	}
	work, err := os.MkdirTemp("", "beamctl-ship-")
	if err != nil {
		fail(stderr, "ship", err)
		return exitFailed
	}
	defer os.RemoveAll(work)
	fc.FileRoots = []string{"/"}
	fc.RetryWindow = 30 * time.Second
	start := time.Now()
	fmt.Fprintf(stdout, "==> Reading %s\n", fetch.Redact(source))
	p, err := ship.Inspect(ctx, fetch.New(fc), source, sum, work)
	if err != nil {
		fail(stderr, "ship", err)
		if errors.Is(err, ship.ErrUnavailable) {
			return exitCluster // the store: try again later
		}
		return exitFailed
	}
	o.Package = p
	fmt.Fprintf(stdout, "==> Shipping %s %s (sha256 %.12s) to %s/%s/%s\n", p.Name, p.Version, p.SHA256, f.job, c.Group, c.Task)
	h := &ship.History{Nomad: c.Nomad, Namespace: c.Namespace, Job: f.job}
	e, err := ship.Run(ctx, c, h, o, ship.Progress{
		Say: func(format string, args ...any) { fmt.Fprintf(stdout, "    "+format+"\n", args...) },
		Hot: func(e rollout.Event) {
			fmt.Fprintf(stdout, "    %s  %-14s %-13s %s\n", e.At.Format("15:04:05.000"), short(e.Alloc), e.Step, e.Message)
		},
		Deploy: func(p rollout.DeployProgress) {
			fmt.Fprintf(stdout, "    %s  %s: %s\n", time.Now().Format("15:04:05.000"), p.Status, p.Description)
			for _, g := range p.Groups {
				fmt.Fprintf(stdout, "                  %s\n", g)
			}
		},
	})
	var refused *ship.RefusedError
	switch {
	case errors.As(err, &refused):
		fail(stderr, "ship", err)
		return exitFailed
	case err != nil:
		fail(stderr, "ship", err)
		if e.Result == "" {
			return exitCluster
		}
		return exitFailed
	case e.Result == "":
		fmt.Fprintf(stdout, "==> Nothing to do\n")
		return exitOK
	}
	fmt.Fprintf(stdout, "==> %s %s: %s (%s) in %s\n", p.Name, p.Version, e.Result, e.Path, time.Since(start).Round(time.Millisecond))
	return exitOK
}

const historyHelp = `Usage: beamctl history -job JOB [-json]

  Shows the job's rollouts (beamctl ship), oldest first: version, sha256,
  path, result, when, how long, and the ACL token's name. They are kept,
  the newest 50, in the Nomad Variable nomad/jobs/JOB/beam-history.

Options:
`

func runHistory(args []string, stdout, stderr io.Writer) int {
	var f jobFlags
	var asJSON bool
	fs := newFlags("history", historyHelp, stderr)
	f.register(fs)
	fs.BoolVar(&asJSON, "json", false, "print the entries as JSON")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if f.job == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "beamctl history: give -job; see beamctl history -help")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	nc, cfg, err := nomadClient(f.address, f.namespace)
	if err != nil {
		fail(stderr, "history", err)
		return exitCluster
	}
	h := &ship.History{Nomad: nc, Namespace: cfg.Namespace, Job: f.job}
	entries, err := h.Entries(ctx)
	if err != nil {
		fail(stderr, "history", err)
		return exitCluster
	}
	if asJSON {
		if entries == nil {
			entries = []ship.Entry{}
		}
		b, _ := json.MarshalIndent(entries, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	if len(entries) == 0 {
		fmt.Fprintf(stdout, "no rollouts recorded for %s (in %s)\n", f.job, h.Path())
		return exitOK
	}
	for _, e := range entries {
		fmt.Fprintln(stdout, strings.TrimRight(e.String(), "\n"))
	}
	return exitOK
}
