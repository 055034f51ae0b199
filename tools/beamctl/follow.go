package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/ship"
)

const followHelp = `Usage: beamctl follow -pointer URL -job JOB [options]

  Pull mode: watches a DeployEx pointer file and ships each new version
  with beamctl ship (hot or full, fallback, history). CI publishes a
  release and moves the pointer; nothing pushes to the cluster.

  The pointer is versions/APP/ENV/current.json in S3, GCS, HTTP(S) or a
  directory: {"version": "1.4.3", "hash": "<git commit>",
  "pre_commands": ["eval Shop.Release.migrate()"]}. The release is
  dist/APP/APP-VERSION.tar.gz under the same base, with its sha256 in the
  .sha256 beside it or in the pointer's optional "sha256". A pre-command
  "eval EXPR" runs EXPR; any other is split like a shell would, without
  a shell. Existing DeployEx buckets work unchanged.

  A version is shipped once: after a failure, follow waits for the next
  one, and ship refuses a version that failed on every path.

Example:

  beamctl follow -job shop -pointer s3://deploys/versions/shop/prod/current.json

Options:
`

func runFollow(args []string, stdout, stderr io.Writer) int {
	var f jobFlags
	var pointer, endpoint string
	var every, timeout time.Duration
	var once, pathStyle, noFallback, insecure bool
	fs := newFlags("follow", followHelp, stderr)
	f.register(fs)
	fs.StringVar(&pointer, "pointer", "", "the pointer file: s3://, gs://, https:// or a path (required)")
	fs.BoolVar(&insecure, "insecure-pointer", false, "allow an http:// pointer, whose content (pre-commands included) anyone on the path can replace")
	fs.DurationVar(&every, "interval", 30*time.Second, "how often to read the pointer")
	fs.BoolVar(&once, "once", false, "read the pointer once, ship if it moved, and exit")
	fs.BoolVar(&noFallback, "no-fallback", false, "do not deploy in full after a failed hot canary")
	fs.DurationVar(&timeout, "step-timeout", 2*time.Minute, "how long one allocation may take to hot-upgrade and pass its gate")
	fs.StringVar(&endpoint, "s3-endpoint", os.Getenv("AWS_ENDPOINT_URL_S3"), "endpoint of an S3-compatible store")
	fs.BoolVar(&pathStyle, "s3-path-style", false, "path-style S3 addressing, for S3-compatible stores")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if f.job == "" || pointer == "" || fs.NArg() > 0 || every < time.Second {
		fmt.Fprintln(stderr, "beamctl follow: give -job and -pointer (and an -interval of at least 1s); see beamctl follow -help")
		return exitUsage
	}
	if err := checkPointer(pointer, insecure); err != nil {
		fmt.Fprintf(stderr, "beamctl follow: %v\n", err)
		return exitUsage
	}
	// Nomad stops a service with SIGTERM: a rollout in progress ends as
	// one interrupted, recorded, not cut off.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stdout = printableWriter{stdout}
	fc := fetch.Config{S3Endpoint: endpoint, S3PathStyle: pathStyle, FileRoots: []string{"/"}, RetryWindow: 30 * time.Second}
	fetcher := fetch.New(fc)
	work, err := os.MkdirTemp("", "beamctl-follow-")
	if err != nil {
		fail(stderr, "follow", err)
		return exitFailed
	}
	defer os.RemoveAll(work)

	last := "" // version and sha256 last shipped or tried
	code := exitOK
	for {
		code = followOnce(ctx, f, pointer, fetcher, fc, work, &last, ship.Options{NoFallback: noFallback, StepTimeout: timeout}, stdout, stderr)
		if once {
			return code
		}
		select {
		case <-ctx.Done():
			return code
		case <-time.After(every):
		}
	}
}

// checkPointer refuses an http:// pointer unless insecure is set: a man
// in the middle could replace its pre-commands, and a sha256 inside it
// pins nothing, since it comes over the same connection.
func checkPointer(pointer string, insecure bool) error {
	if strings.HasPrefix(strings.ToLower(pointer), "http://") && !insecure {
		return fmt.Errorf("-pointer %s is plain http://, so anyone on the network path can change the version, sha256 and "+
			"pre-commands it gives; use https://, s3:// or gs://, or pass -insecure-pointer to accept that", fetch.Redact(pointer))
	}
	return nil
}

// followOnce reads the pointer and ships its version unless it is the one
// last tried.
func followOnce(ctx context.Context, f jobFlags, pointer string, fetcher *fetch.Fetcher, fc fetch.Config, work string,
	last *string, o ship.Options, stdout, stderr io.Writer) int {
	p, err := ship.ReadPointer(ctx, fetcher, pointer, work)
	if err != nil {
		fail(stderr, "follow", err)
		return exitFailed
	}
	key := p.Version + " " + p.SHA256
	if key == *last {
		return exitOK
	}
	src, err := ship.ReleaseSource(pointer, p.Version)
	if err != nil {
		fail(stderr, "follow", err)
		return exitUsage
	}
	cmds, err := p.Commands()
	if err != nil {
		fail(stderr, "follow", fmt.Errorf("pointer %s: %w", fetch.Redact(pointer), err))
		return exitFailed
	}
	commit := ""
	if p.Hash != "" {
		commit = " (commit " + p.Hash + ")"
	}
	fmt.Fprintf(stdout, "==> Pointer %s names %s%s\n", fetch.Redact(pointer), p.Version, commit)
	o.PreCommands, o.Rollout, o.Expect = cmds, rolloutID(), p.Version
	code := shipOnce(ctx, f, src, p.SHA256, fc, o, stdout, stderr)
	// A version is tried once, unless Nomad, the store or an interrupt
	// kept the rollout from running: then the next read tries again.
	if code != exitCluster && ctx.Err() == nil {
		*last = key
	}
	return code
}
