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

	"github.com/hashicorp/hcl/v2/hclwrite"
	nomad "github.com/hashicorp/nomad/api"
	"github.com/zclconf/go-cty/cty"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
)

const deployHelp = `Usage: beamctl deploy [options] JOBSPEC

  Deploys a full release: renders the jobspec (HCL2, such as those in
  jobspecs/) with the release's source and sha256, submits it, and follows
  the Nomad deployment (placement, canaries, health, promotion or
  auto-revert) until it ends. It exits 0 only when the deployment
  succeeded. Then it clears the hot-upgrade targets that were set for the
  old base version.

  -source and -sha256 set the jobspec variables release_source and
  release_sha256. Without -sha256, the sha256 is read from SOURCE.sha256
  (as beamctl publish writes it), so the jobspec pins the exact tarball.

Example:

  beamctl deploy -source s3://releases/dist/shop/shop-1.5.0.tar.gz jobspecs/hello_ex.nomad.hcl

Options:
`

// varFlags collects repeated -var name=value flags.
type varFlags []string

func (v *varFlags) String() string { return strings.Join(*v, ", ") }
func (v *varFlags) Set(s string) error {
	if !strings.Contains(s, "=") {
		return fmt.Errorf("-var %q must be name=value", s)
	}
	*v = append(*v, s)
	return nil
}

func runDeploy(args []string, stdout, stderr io.Writer) int {
	var address, namespace, source, sum, s3Endpoint string
	var vars varFlags
	var pathStyle, asJSON bool
	var timeout time.Duration
	fs := newFlags("deploy", deployHelp, stderr)
	fs.StringVar(&address, "address", "", "Nomad's HTTP address (default: NOMAD_ADDR or http://127.0.0.1:4646)")
	fs.StringVar(&namespace, "namespace", "", "the job's namespace (default: NOMAD_NAMESPACE or default)")
	fs.StringVar(&source, "source", "", "the release tarball: sets the jobspec variable release_source")
	fs.StringVar(&sum, "sha256", "", "its sha256: sets release_sha256 (default: read from SOURCE.sha256)")
	fs.StringVar(&s3Endpoint, "s3-endpoint", os.Getenv("AWS_ENDPOINT_URL_S3"), "endpoint of an S3-compatible store, to read SOURCE.sha256")
	fs.BoolVar(&pathStyle, "s3-path-style", false, "path-style S3 addressing, for S3-compatible stores")
	fs.BoolVar(&asJSON, "json", false, "print progress as JSON lines")
	fs.Var(&vars, "var", "a jobspec variable, name=value (repeatable)")
	fs.DurationVar(&timeout, "timeout", 30*time.Minute, "give up following the deployment after this long")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "beamctl deploy: give one jobspec file; see beamctl deploy -help")
		return exitUsage
	}
	hcl, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		fail(stderr, "deploy", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if source != "" {
		vars = append(vars, "release_source="+source)
		if sum == "" {
			// beamctl reads local files as the operator who runs it, so
			// any directory will do, unlike the plugin, which runs as root.
			s, err := fetch.New(fetch.Config{S3Endpoint: s3Endpoint, S3PathStyle: pathStyle, RetryWindow: 10 * time.Second,
				FileRoots: []string{"/"}}).Checksum(ctx, source)
			if err != nil {
				fmt.Fprintf(stderr, "beamctl deploy: no -sha256 and %s.sha256 cannot be read: %v; publish with beamctl publish or give -sha256\n", fetch.Redact(source), err)
				return exitFailed
			}
			sum = s
		}
		vars = append(vars, "release_sha256="+sum)
	}
	var hclVars strings.Builder
	for _, v := range vars {
		k, val, _ := strings.Cut(v, "=")
		fmt.Fprintf(&hclVars, "%s = %s\n", k, hclValue(val))
	}

	c, cfg, err := nomadClient(address, namespace)
	if err != nil {
		fail(stderr, "deploy", err)
		return exitCluster
	}
	job, err := c.Jobs().ParseHCLOpts(&nomad.JobsParseRequest{JobHCL: string(hcl), Variables: hclVars.String(), Canonicalize: true})
	if err != nil {
		fmt.Fprintf(stderr, "beamctl deploy: %s: %v\n", fs.Arg(0), err)
		return exitFailed
	}
	if job.Namespace != nil && *job.Namespace != "" && namespace == "" {
		cfg.Namespace = *job.Namespace
	}
	old, _, _ := c.Jobs().Info(*job.ID, (&nomad.QueryOptions{Namespace: cfg.Namespace}).WithContext(ctx))
	before := rollout.ReleaseSources(old)

	start := time.Now()
	if !asJSON {
		fmt.Fprintf(stdout, "==> Deploying job %s from %s\n", *job.ID, fs.Arg(0))
		fmt.Fprintf(stdout, "    health gate: %s\n", rollout.DeployGate(job))
	}
	err = rollout.Deploy(ctx, c, job, cfg.Namespace, func(p rollout.DeployProgress) {
		if asJSON {
			b, _ := json.Marshal(map[string]any{"at": time.Now(), "status": p.Status, "description": p.Description, "groups": p.Groups})
			fmt.Fprintln(stdout, string(b))
			return
		}
		fmt.Fprintf(stdout, "    %s  %s: %s\n", time.Now().Format("15:04:05.000"), p.Status, p.Description)
		for _, g := range p.Groups {
			fmt.Fprintf(stdout, "                  %s\n", g)
		}
	})
	if err != nil {
		fail(stderr, "deploy", err)
		var de *rollout.DeployError
		if errors.As(err, &de) {
			for _, r := range rollout.FailureReasons(context.WithoutCancel(ctx), c, *job.ID, cfg.Namespace) {
				fmt.Fprintf(stderr, "    %s\n", r)
			}
			return exitFailed
		}
		return exitCluster
	}
	changed := map[string]bool{}
	for k, src := range rollout.ReleaseSources(job) {
		changed[k] = before[k] != src
	}
	if err := rollout.ClearStaleTargets(ctx, c, job, cfg.Namespace, changed); err != nil {
		fmt.Fprintf(stderr, "beamctl deploy: the deployment succeeded, but clearing old hot-upgrade targets failed: %v\n", err)
		return exitCluster
	}
	if !asJSON {
		fmt.Fprintf(stdout, "==> Deployment of %s succeeded in %s\n", *job.ID, time.Since(start).Round(time.Millisecond))
	}
	return exitOK
}

// hclValue returns a -var value as it goes into a variables file: a map or
// a list ({...} or [...]) as the HCL expression it is, as the nomad CLI
// takes one for a variable of that type, and anything else as an HCL
// string, escaped so that HCL reads back exactly v.
func hclValue(v string) string {
	if t := strings.TrimSpace(v); (strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}")) ||
		(strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]")) {
		return t
	}
	return string(hclwrite.TokensForValue(cty.StringVal(v)).Bytes())
}
