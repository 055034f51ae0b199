package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/nomad-driver-beam/nomad-driver-beam/tools/loadtest"
)

const loadtestHelp = `Usage: beamctl loadtest -service NAME [options] [-- COMMAND [ARG...]]

  Sends a constant load to a Consul service through two load balancers
  that run inside beamctl, on 127.0.0.1: one follows Consul's health with
  blocking queries and reacts at once, the other refreshes its list of
  passing instances only every -poll (3s), as a balancer behind a DNS TTL
  does. Every connection error, 5xx or timeout counts as a failed request.

  With a COMMAND, the load runs while the command does (a deploy, say) and
  for -settle after it; without one, for -duration. It then prints, per
  balancer, the requests sent and failed and the p50 and p99 latency.

  Exit code 0 means that no request failed and the command succeeded.

Example:

  beamctl loadtest -service hello-erl -rate 100 -- \
    beamctl deploy -source s3://releases/hello_erl-0.2.0.tar.gz jobspecs/hello_erl.nomad.hcl

Options:
`

func runLoadtest(args []string, stdout, stderr io.Writer) int {
	var (
		service, path    string
		rate             int
		duration, settle time.Duration
		poll, timeout    time.Duration
		asJSON           bool
	)
	fs := newFlags("loadtest", loadtestHelp, stderr)
	fs.StringVar(&service, "service", "", "the Consul service to send requests to (required)")
	fs.StringVar(&path, "path", "/", "the HTTP path to request")
	fs.IntVar(&rate, "rate", 100, "requests per second through each balancer")
	fs.DurationVar(&duration, "duration", 30*time.Second, "how long to load without a COMMAND")
	fs.DurationVar(&settle, "settle", 5*time.Second, "how long to go on after COMMAND ends")
	fs.DurationVar(&poll, "poll", 3*time.Second, "the refresh interval of the polling balancer")
	fs.DurationVar(&timeout, "timeout", 5*time.Second, "a request slower than this fails")
	fs.BoolVar(&asJSON, "json", false, "print the results as JSON")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if service == "" || rate <= 0 || poll <= 0 || !strings.HasPrefix(path, "/") {
		fmt.Fprintln(stderr, "beamctl loadtest: -service is required, -rate and -poll must be above 0, and -path must start with /")
		return exitUsage
	}

	c, err := consul.NewClient(consul.DefaultConfig())
	if err != nil {
		fail(stderr, "loadtest", err)
		return exitCluster
	}
	follow, err := loadtest.Follow(c, service)
	if err != nil {
		fail(stderr, "loadtest", err)
		return exitFailed
	}
	defer follow.Close()
	polling, err := loadtest.Poll(c, service, poll)
	if err != nil {
		fail(stderr, "loadtest", err)
		return exitFailed
	}
	defer polling.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, b := range []*loadtest.Balancer{follow, polling} {
		if err := b.WaitReady(ctx, 1); err != nil {
			fail(stderr, "loadtest", fmt.Errorf("no passing instance of Consul service %q: %w", service, err))
			return exitCluster
		}
	}

	// The load never outlasts -duration, or with a COMMAND an hour; Ctrl-C
	// ends it early (and the command with it) and still prints the report.
	limit := duration
	if fs.NArg() > 0 {
		limit = time.Hour
	}
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	load := loadtest.Load{Targets: []string{follow.URL, polling.URL}, Rate: rate, Timeout: timeout,
		Path: func(int, int) string { return path }, Max: limit + settle}
	fmt.Fprintf(stderr, "==> %d requests/s to %s through each balancer (%s, %s)\n", rate, service, follow.Name, polling.Name)
	run := load.Start()
	start := time.Now()
	code := exitOK
	if fs.NArg() > 0 {
		cctx, cancel := context.WithTimeout(sig, limit)
		cmd := exec.CommandContext(cctx, fs.Arg(0), fs.Args()[1:]...)
		cmd.Stdout, cmd.Stderr, cmd.Stdin = stdout, stderr, os.Stdin
		err := cmd.Run()
		cancel()
		switch {
		case sig.Err() != nil:
			fmt.Fprintf(stderr, "beamctl loadtest: interrupted while %s ran\n", fs.Arg(0))
			code = exitFailed
		case err != nil:
			fmt.Fprintf(stderr, "beamctl loadtest: %s: %v\n", fs.Arg(0), err)
			code = exitFailed
		default:
			select {
			case <-sig.Done():
			case <-time.After(settle):
			}
		}
	} else {
		select {
		case <-sig.Done():
		case <-time.After(duration):
		}
	}
	results := run.Stop()
	took := time.Since(start)

	names := []string{follow.Name, polling.Name}
	if asJSON {
		var out []map[string]any
		for i, r := range results {
			out = append(out, map[string]any{"balancer": names[i], "sent": r.Sent, "failed": r.Failed,
				"p50_ms": ms(r.Percentile(50)), "p99_ms": ms(r.Percentile(99)), "errors": r.Errors})
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(stdout, string(b))
	} else {
		fmt.Fprintf(stdout, "==> Load on %s for %s\n", service, took.Round(100*time.Millisecond))
		for i, r := range results {
			fmt.Fprintf(stdout, "    %-10s %s\n", names[i], r)
		}
	}
	for _, r := range results {
		if r.Failed > 0 {
			code = exitFailed
		}
	}
	return code
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
