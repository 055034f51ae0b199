package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/tools/appup"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/relupgen"
)

const relupHelp = `Usage: beamctl relup -from OLD.tar.gz [-from OLDER.tar.gz ...] -to NEW.tar.gz -o OUT.tar.gz

  Turns two builds of a release into a hot-upgrade package, with no change
  to the application: OUT is a copy of NEW with an .appup for every
  application whose version changed and releases/VSN/relup built by
  systools:make_relup. It works on mix and relx (rebar3) tarballs, with or
  without ERTS, that include sasl. Publish OUT in NEW's place
  (beamctl publish); the driver takes it as a hot target.

  The appups are derived from the compiled modules: added modules are
  added, deleted ones deleted, changed supervisors updated as supervisors,
  changed modules whose new code exports code_change/3,4 or
  system_code_change/4 get an advanced update (their processes are
  suspended and their state converted), and other changed modules are
  reloaded, after the modules they call. Purges of changed modules are
  soft_purge: if a process still runs old code, the upgrade is refused
  before anything changes, rather than the process being killed; a soft
  PostPurge may leave old code loaded, which then blocks the next upgrade
  of that module until its processes leave it.

  It refuses what a hot upgrade cannot do (a changed ERTS, kernel, stdlib,
  sasl or Elixir needs a new emulator; new code under an unchanged
  application version; a module moving between applications) and what
  generated instructions would get wrong unless -appup gives your own (a
  deleted module that ran processes; a changed NIF loader). It warns about
  what a hot upgrade will not do (a supervisor's new child is not started,
  nor a removed one stopped).

  Every appup is printed for review; -dry-run prints them and writes
  nothing. An appup given with -appup wins over a generated one, as do the
  appups and relup entries NEW already holds, unless -regenerate.

  systools runs in NEW's own ERTS when it runs on this machine; otherwise in
  a host Erlang of the same OTP release (-erl, or erl in PATH).

Example:

  beamctl relup -from shop-1.4.2.tar.gz -to shop-1.4.3.tar.gz -o hot/shop-1.4.3.tar.gz
  beamctl publish -to s3://releases/dist/shop hot/shop-1.4.3.tar.gz

Options:
`

// listFlag is a flag that may be given more than once.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runRelup(args []string, stdout, stderr io.Writer) int {
	var from, appups listFlag
	o := relupgen.Options{Log: stderr}
	fs := newFlags("relup", relupHelp, stderr)
	fs.Var(&from, "from", "a release tarball to upgrade from (repeat for several)")
	fs.StringVar(&o.To, "to", "", "the new release tarball (required)")
	fs.StringVar(&o.Out, "o", "", "where to write the hot-upgrade package (required unless -dry-run)")
	fs.Var(&appups, "appup", "your own appup for an application, as APP=FILE or a file named APP.appup (repeatable)")
	fs.BoolVar(&o.Regenerate, "regenerate", false, "ignore the relup and appups that NEW already holds")
	fs.BoolVar(&o.DryRun, "dry-run", false, "print the appups, warnings and refusals, and write nothing")
	fs.StringVar(&o.Erl, "erl", "", "the host erl to use when NEW's own ERTS does not run here (default: erl in PATH)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	o.From = from
	if len(from) == 0 || o.To == "" || (o.Out == "" && !o.DryRun) || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "beamctl relup: give -from (once or more), -to and -o; see beamctl relup -help")
		return exitUsage
	}
	o.Appups = map[string]string{}
	for _, a := range appups {
		app, file, ok := strings.Cut(a, "=")
		if !ok {
			file = a
			app = strings.TrimSuffix(filepath.Base(a), ".appup")
			if app == filepath.Base(a) {
				fmt.Fprintf(stderr, "beamctl relup: -appup %s: give APP=FILE, or a file named APP.appup\n", a)
				return exitUsage
			}
		}
		o.Appups[app] = file
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	fmt.Fprintf(stderr, "beamctl relup: %s → %s\n", strings.Join(baseNames(from), ", "), filepath.Base(o.To))
	res, err := relupgen.Build(ctx, o)
	if res != nil && res.Plan != nil {
		report(stdout, res.Plan)
	}
	var refusal *appup.Refusal
	if errors.As(err, &refusal) {
		fmt.Fprintln(stderr, "beamctl relup: no hot upgrade is possible:")
		for _, r := range refusal.Reasons {
			fmt.Fprintf(stderr, "  - %s\n", appup.Printable(r))
		}
		return exitFailed
	}
	if err != nil {
		fail(stderr, "relup", errors.New(appup.Printable(err.Error())))
		return exitFailed
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(stdout, "systools warning: %s\n", appup.Printable(w))
	}
	switch {
	case o.DryRun:
		fmt.Fprintln(stdout, "dry run: nothing written")
	default:
		fmt.Fprintf(stdout, "wrote %s (sha256 %s)\n", o.Out, res.SHA256)
		if res.Plan == nil {
			fmt.Fprintln(stdout, "  the release's own relup already covers every -from version; it is unchanged")
		}
		fmt.Fprintf(stdout, "publish it in %s's place: beamctl publish -to DEST %s\n", filepath.Base(o.To), o.Out)
	}
	return exitOK
}

// report prints the appups, the applications added and removed, and the
// warnings and notes, without control characters: names and appups come
// from the release.
func report(out io.Writer, p *appup.Plan) {
	w := printableWriter{out}
	for _, a := range p.Appups {
		fmt.Fprintf(w, "\n%% lib/%s-%s/ebin/%s.appup (%s)\n%s", a.App, a.Version, a.App, a.Source, a.Text())
	}
	if len(p.Appups) > 0 {
		fmt.Fprintln(w)
	}
	for _, a := range p.Added {
		fmt.Fprintf(w, "add_application %s: systools loads and starts it\n", a)
	}
	for _, a := range p.Removed {
		fmt.Fprintf(w, "remove_application %s: systools stops and unloads it\n", a)
	}
	for _, n := range p.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for _, x := range p.Warnings {
		fmt.Fprintf(w, "warning: %s\n", x)
	}
}

func baseNames(files []string) []string {
	var out []string
	for _, f := range files {
		out = append(out, filepath.Base(f))
	}
	return out
}

// printableWriter writes through appup.Printable.
type printableWriter struct{ w io.Writer }

func (p printableWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, appup.Printable(string(b))); err != nil {
		return 0, err
	}
	return len(b), nil
}
