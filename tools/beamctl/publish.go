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

	"github.com/nomad-driver-beam/nomad-driver-beam/tools/publish"
)

const publishHelp = `Usage: beamctl publish [options] TARBALL

  Uploads a release tarball (mix release, rebar3 tar, or a Gleam
  erlang-shipment packed with tar) to S3, GCS or a directory as
  DEST/NAME-VERSION.tar.gz, writes NAME-VERSION.tar.gz.sha256 next to it,
  and prints the release block to paste into a jobspec. It tells whether
  the tarball is a hot-upgrade package, and from which versions.

  It refuses to replace a version that is already published, unless
  -force is given.

  S3 credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID,
  AWS_PROFILE, instance roles...); GCS uses Application Default
  Credentials and honours STORAGE_EMULATOR_HOST.

Example:

  beamctl publish -to s3://releases/dist/shop _build/prod/shop-1.4.3.tar.gz

Options:
`

func runPublish(args []string, stdout, stderr io.Writer) int {
	var to, endpoint string
	var pathStyle, force, asJSON bool
	fs := newFlags("publish", publishHelp, stderr)
	fs.StringVar(&to, "to", "", "where to publish: s3://bucket/dir, gs://bucket/dir or a directory (required)")
	fs.StringVar(&endpoint, "s3-endpoint", os.Getenv("AWS_ENDPOINT_URL_S3"), "endpoint of an S3-compatible store")
	fs.BoolVar(&pathStyle, "s3-path-style", false, "path-style S3 addressing, for S3-compatible stores")
	fs.BoolVar(&force, "force", false, "replace a version that is already published")
	fs.BoolVar(&asJSON, "json", false, "print the result as JSON")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if to == "" || fs.NArg() != 1 {
		fmt.Fprintln(stderr, "beamctl publish: give -to and one tarball; see beamctl publish -help")
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	pkg, err := publish.Inspect(fs.Arg(0))
	if err != nil {
		fail(stderr, "publish", err)
		return exitFailed
	}
	store, prefix, err := publish.Open(ctx, to, endpoint, pathStyle)
	if err != nil {
		fail(stderr, "publish", err)
		return exitUsage
	}
	bar := newProgress(stderr, "uploading "+pkg.Key(prefix))
	url, err := publish.Publish(ctx, store, pkg, prefix, force, bar.update)
	bar.done(err == nil)
	if err != nil {
		fail(stderr, "publish", err)
		if errors.Is(err, publish.ErrExists) {
			return exitFailed
		}
		return exitCluster
	}
	if asJSON {
		b, _ := json.MarshalIndent(map[string]any{
			"source": url, "sha256": pkg.SHA256, "name": pkg.Name, "version": pkg.Version,
			"kind": pkg.Kind, "size": pkg.Size, "hot_upgrade_from": pkg.UpFrom,
		}, "", "  ")
		fmt.Fprintln(stdout, string(b))
		return exitOK
	}
	fmt.Fprintf(stdout, "Published %s %s (%s release, %s) to %s\n", pkg.Name, pkg.Version, pkg.Kind, size(pkg.Size), url)
	if len(pkg.UpFrom) > 0 {
		fmt.Fprintf(stdout, "Hot-upgrade package: its relup upgrades from %s.\n", strings.Join(pkg.UpFrom, ", "))
		fmt.Fprintf(stdout, "  beamctl upgrade -job JOB -version %s -source %s -sha256 %s\n", pkg.Version, url, pkg.SHA256)
	} else {
		fmt.Fprintln(stdout, "Not a hot-upgrade package (no relup): deploy it as a full release.")
	}
	fmt.Fprintf(stdout, "\nrelease {\n  source = %q\n  sha256 = %q\n}\n", url, pkg.SHA256)
	return exitOK
}

// progress draws an upload's progress: a bar redrawn in place on a
// terminal, a line each quarter otherwise.
type progress struct {
	w       io.Writer
	label   string
	tty     bool
	quarter int64
}

func newProgress(w io.Writer, label string) *progress {
	p := &progress{w: w, label: label, quarter: -1}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(done, total int64) {
	if total <= 0 {
		return
	}
	if p.tty {
		const width = 30
		n := int(done * width / total)
		fmt.Fprintf(p.w, "\r%s [%s%s] %3d%% %s/%s", p.label, strings.Repeat("=", n), strings.Repeat(" ", width-n),
			done*100/total, size(done), size(total))
		return
	}
	if q := done * 4 / total; q > p.quarter {
		p.quarter = q
		fmt.Fprintf(p.w, "%s: %d%% (%s of %s)\n", p.label, done*100/total, size(done), size(total))
	}
}

func (p *progress) done(ok bool) {
	if p.tty {
		if ok {
			fmt.Fprintln(p.w, " done")
		} else {
			fmt.Fprintln(p.w)
		}
	}
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
