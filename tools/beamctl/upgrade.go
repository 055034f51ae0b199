package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/ship"
)

const upgradeHelp = `Usage: beamctl upgrade [options]

  Hot-upgrades the allocations of a job's beam task in place, one at a
  time: same allocations, same OS processes, new code. Each allocation
  must report success from the driver and pass its health gate before the
  next one starts: its Consul checks, or, when its group registers none
  (a worker), the driver's BEAM-level health (the task runs, the node has
  started and every application of its release runs). If one fails, the allocations already upgraded are
  hot-downgraded again, and beamctl exits 1.

  The release must be a hot-upgrade package: releases/VSN/relup with a
  path up from the version the allocations run.

  Without -source, the version must already be on the nodes: that is a
  hot rollback, for example to the job's base version.

  -pre-command runs a command (a migration) once per rollout: in the first
  allocation, inside its task, with the new release's code, after the
  package is on the node and before it installs. If it fails, nothing is
  upgraded, and the output says which command, its exit code and its last
  lines of output.

Example:

  beamctl upgrade -job hello -version 0.2.0 \
    -source s3://releases/dist/hello/hello-0.2.0.tar.gz
  beamctl upgrade -job hello -version 0.1.0    # back again

Options:
`

type upgradeFlags struct {
	jobFlags
	version, source, sha256 string
	preCommands             listFlag
	timeout                 time.Duration
	json                    bool
}

func runUpgrade(args []string, stdout, stderr io.Writer) int {
	var f upgradeFlags
	fs := newFlags("upgrade", upgradeHelp, stderr)
	f.register(fs)
	fs.StringVar(&f.version, "version", "", "the release version to upgrade to (required)")
	fs.StringVar(&f.source, "source", "", "where the release tarball is: s3://, gs://, https://, file://; "+
		"without it, the version must be on the nodes already (a hot rollback)")
	fs.StringVar(&f.sha256, "sha256", "", "the tarball's sha256 (default: the driver reads SOURCE.sha256)")
	fs.Var(&f.preCommands, "pre-command", `a command to run once, in the first allocation, with the new code before it installs `+
		`(repeatable): "eval EXPR", or a program and its arguments, split like a shell would`)
	fs.DurationVar(&f.timeout, "step-timeout", 2*time.Minute, "how long one allocation may take to upgrade and pass its checks")
	fs.BoolVar(&f.json, "json", false, "print progress as JSON lines")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	var missing []string
	for _, fl := range [][2]string{{"-job", f.job}, {"-version", f.version}} {
		if fl[1] == "" {
			missing = append(missing, fl[0])
		}
	}
	if len(missing) > 0 || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "beamctl upgrade: missing %s; see beamctl upgrade -help\n", strings.Join(missing, ", "))
		return exitUsage
	}

	pre, err := preCommands(f.preCommands)
	if err != nil {
		fmt.Fprintf(stderr, "beamctl upgrade: %v\n", err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := f.cluster(ctx)
	if err != nil {
		fail(stderr, "upgrade", err)
		return exitCluster
	}
	plan := rollout.Plan{
		Target: rollout.Target{Version: f.version, Source: f.source, SHA256: f.sha256, Rollout: rolloutID(),
			PreCommands: pre},
		StepTimeout: f.timeout,
	}
	start := time.Now()
	entry := ship.Entry{Version: f.version, SHA256: f.sha256, Source: f.source, Path: "hot", Started: start,
		By: ship.TokenName(ctx, c.Nomad)}
	defer func() {
		// Every rollout goes into the job's history, as beamctl ship's do.
		entry.Ended = time.Now()
		h := &ship.History{Nomad: c.Nomad, Namespace: c.Namespace, Job: f.job}
		if err := h.Add(context.WithoutCancel(ctx), entry); err != nil {
			fmt.Fprintf(stderr, "beamctl upgrade: recording the rollout in %s failed: %v\n", h.Path(), err)
		}
	}()
	if !f.json {
		fmt.Fprintf(stdout, "==> Hot upgrade of %s/%s/%s to %s (variable %s)\n", f.job, c.Group, c.Task, f.version, c.Path())
		fmt.Fprintf(stdout, "    health gate: %s\n", c.Gate())
	}
	err = rollout.Run(ctx, c, plan, func(e rollout.Event) {
		if f.json {
			b, _ := json.Marshal(map[string]any{
				"alloc": e.Alloc.ID, "name": e.Alloc.Name, "step": e.Step, "message": e.Message,
				"at": e.At, "took_ms": e.Took.Milliseconds(),
			})
			fmt.Fprintln(stdout, string(b))
			return
		}
		fmt.Fprintf(stdout, "    %s  %-14s %-13s %s\n", e.At.Format("15:04:05.000"), short(e.Alloc), e.Step, e.Message)
	})
	if err != nil {
		entry.Result, entry.Message = ship.Failed, err.Error()
		var re *rollout.Error
		if errors.As(err, &re) {
			fail(stderr, "upgrade", err)
			return exitFailed
		}
		fail(stderr, "upgrade", err)
		return exitCluster
	}
	entry.Result = ship.Succeeded
	if !f.json {
		fmt.Fprintf(stdout, "==> Done in %s\n", time.Since(start).Round(time.Millisecond))
	}
	return exitOK
}

// rolloutID names a rollout in the targets it writes.
func rolloutID() string {
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	return hex.EncodeToString(id)
}

// preCommands parses -pre-command flags.
func preCommands(flags []string) ([][]string, error) {
	var out [][]string
	for _, s := range flags {
		argv, err := rollout.Command(s)
		if err != nil {
			return nil, fmt.Errorf("-pre-command %q: %w", s, err)
		}
		out = append(out, argv)
	}
	return out, hotspec.CheckPreCommands(out)
}

func short(a rollout.Alloc) string {
	if a.ID == "" {
		return "job"
	}
	if len(a.ID) > 8 {
		return fmt.Sprintf("%s[%d]", a.ID[:8], a.Index)
	}
	return a.ID
}

// jobFlags are the flags that name a job's beam task and reach its cluster.
type jobFlags struct {
	address, namespace, job, group, task string
}

func (f *jobFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.address, "address", "", "Nomad's HTTP address (default: NOMAD_ADDR or http://127.0.0.1:4646)")
	fs.StringVar(&f.namespace, "namespace", "", "the job's namespace (default: NOMAD_NAMESPACE or default)")
	fs.StringVar(&f.job, "job", "", "the job ID (required)")
	fs.StringVar(&f.group, "group", "", "the task group (default: the job's only group with a beam task)")
	fs.StringVar(&f.task, "task", "", "the beam task (default: the group's only beam task)")
}

func (f *jobFlags) cluster(ctx context.Context) (*rollout.Nomad, error) {
	return clusterFor(ctx, f.address, f.namespace, f.job, f.group, f.task)
}

// nomadClient returns a Nomad client with the NOMAD_* environment and the
// -address and -namespace flags, which win.
func nomadClient(address, namespace string) (*nomad.Client, *nomad.Config, error) {
	cfg := nomad.DefaultConfig()
	if address != "" {
		cfg.Address = address
	}
	if namespace != "" {
		cfg.Namespace = namespace
	}
	c, err := nomad.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("nomad client for %s: %w", cfg.Address, err)
	}
	return c, cfg, nil
}

// clusterFor connects to Nomad and Consul and finds the job's beam task.
func clusterFor(ctx context.Context, address, namespace, jobID, group, task string) (*rollout.Nomad, error) {
	nc, cfg, err := nomadClient(address, namespace)
	if err != nil {
		return nil, err
	}
	job, _, err := nc.Jobs().Info(jobID, (&nomad.QueryOptions{Namespace: cfg.Namespace}).WithContext(ctx))
	if err != nil {
		if strings.Contains(err.Error(), "404") {
			return nil, fmt.Errorf("job %q not found in namespace %q at %s; check -job and -namespace", jobID, nsOr(cfg.Namespace), cfg.Address)
		}
		return nil, fmt.Errorf("cannot read job %q from Nomad at %s (set -address or NOMAD_ADDR, and NOMAD_TOKEN): %w", jobID, cfg.Address, err)
	}
	g, t, err := beamTask(job, group, task)
	if err != nil {
		return nil, err
	}
	cc, err := consul.NewClient(consul.DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	checks := false
	for _, tg := range job.TaskGroups {
		if *tg.Name == g {
			checks = rollout.HasChecks(tg)
		}
	}
	return &rollout.Nomad{Nomad: nc, Consul: cc, Job: jobID, Group: g, Task: t, Namespace: cfg.Namespace, Checks: checks}, nil
}

func nsOr(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

// beamTask picks the job's beam task, or checks the one named.
func beamTask(job *nomad.Job, group, task string) (string, string, error) {
	var found [][2]string
	for _, tg := range job.TaskGroups {
		if group != "" && *tg.Name != group {
			continue
		}
		for _, t := range tg.Tasks {
			if t.Driver == "beam" && (task == "" || t.Name == task) {
				found = append(found, [2]string{*tg.Name, t.Name})
			}
		}
	}
	switch len(found) {
	case 0:
		return "", "", fmt.Errorf("job %s has no beam task matching -group %q -task %q", *job.ID, group, task)
	case 1:
		return found[0][0], found[0][1], nil
	}
	return "", "", fmt.Errorf("job %s has several beam tasks (%v); pick one with -group and -task", *job.ID, found)
}
