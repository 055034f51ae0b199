// Package relupgen builds a hot-upgrade package from release tarballs: a
// copy of the new release with a generated .appup for every application
// whose version changed and a releases/VSN/relup made by systools, so that
// a mix or relx release that includes sasl can be hot-upgraded with no
// change to the application. The appups come from package appup; systools
// runs in the release's own ERTS when that runs here, or in a host Erlang
// of the same OTP release.
package relupgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/appup"
)

// Options say what to build.
type Options struct {
	// From are the tarballs of the releases to upgrade from; To is the new
	// release; Out is where the package goes (it may be To).
	From []string
	To   string
	Out  string
	// Appups are the user's own .appup files, by application name; they
	// win over generated ones.
	Appups map[string]string
	// Regenerate ignores a relup and appups that the new release already
	// holds.
	Regenerate bool
	// DryRun plans and prints, and writes nothing.
	DryRun bool
	// Erl is the host Erlang to use when the release's own ERTS does not
	// run here (or the release has none): a path or a name in PATH.
	Erl string
	// Log receives progress and the report; Work is a scratch directory
	// (a temporary one when empty).
	Log  io.Writer
	Work string
}

// Result is what Build made.
type Result struct {
	Plan     *appup.Plan
	Kept     []string // up-from versions kept from the release's own relup
	Runtime  string   // the Erlang that ran systools
	Warnings []string // systools' own
	SHA256   string   // of Out
}

// Build makes the package. A *appup.Refusal error means that no hot
// upgrade is possible and says why.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if len(o.From) == 0 || o.To == "" || (o.Out == "" && !o.DryRun) {
		return nil, fmt.Errorf("give -from (once or more), -to and -o")
	}
	work := o.Work
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "beamctl-relup-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	}
	b := &builder{o: o, work: work, res: &Result{}}
	return b.res, b.build(ctx)
}

type builder struct {
	o    Options
	work string
	res  *Result
	nw   *opened
	olds []*opened
}

func (b *builder) step(format string, args ...any) func() {
	start := time.Now()
	fmt.Fprintf(b.o.Log, "  "+format+" ... ", args...)
	return func() { fmt.Fprintf(b.o.Log, "%s\n", time.Since(start).Round(time.Millisecond)) }
}

func (b *builder) build(ctx context.Context) error {
	// One snapshot of NEW is read, unpacked and copied into OUT, so that
	// the tarball cannot change between the analysis and the copy.
	snap := filepath.Join(b.work, "new.tar.gz")
	if err := copyFile(b.o.To, snap); err != nil {
		return err
	}
	var err error
	done := b.step("unpacking %s", filepath.Base(b.o.To))
	if b.nw, err = open(snap, b.o.To, filepath.Join(b.work, "new")); err != nil {
		return err
	}
	done()
	for i, f := range b.o.From {
		done := b.step("unpacking %s", filepath.Base(f))
		old, err := open(f, f, filepath.Join(b.work, fmt.Sprintf("old%d", i)))
		if err != nil {
			return err
		}
		done()
		b.olds = append(b.olds, old)
	}
	nw, err := relup.InspectVersion(b.nw.rel.Root, b.nw.rel.Name, b.nw.rel.Version)
	if err != nil {
		return fmt.Errorf("%s: %w", b.o.To, err)
	}
	var olds []*relup.Package
	for _, old := range b.olds {
		p, err := relup.InspectVersion(old.rel.Root, old.rel.Name, old.rel.Version)
		if err != nil {
			return fmt.Errorf("%s: %w", old.file, err)
		}
		if slices.Contains(b.res.Kept, p.Version) || slices.ContainsFunc(olds, func(q *relup.Package) bool { return q.Version == p.Version }) {
			continue // given twice
		}
		if nw.HasRelup() && !b.o.Regenerate && slices.Contains(nw.UpFrom(), p.Version) && slices.Contains(nw.DownTo(), p.Version) {
			b.res.Kept = append(b.res.Kept, p.Version)
			continue
		}
		olds = append(olds, p)
	}
	if len(b.res.Kept) > 0 {
		fmt.Fprintf(b.o.Log, "  keeping the relup entries the release already has from %s (-regenerate rebuilds them)\n",
			strings.Join(b.res.Kept, ", "))
	}
	if len(olds) == 0 {
		if b.o.DryRun {
			return nil
		}
		sum, err := rewrite(snap, b.o.Out, nil)
		b.res.SHA256 = sum
		return err
	}
	done = b.step("comparing %d applications", len(nw.Apps))
	plan, err := appup.Compare(olds, nw)
	if err != nil {
		return err
	}
	done()
	b.res.Plan = plan
	if err := b.userAppups(plan); err != nil {
		return err
	}
	if err := plan.Refusal(); err != nil {
		return err
	}
	if b.o.DryRun {
		return nil
	}
	return b.write(ctx, plan)
}

// userAppups puts the user's appups in the plan: those given with -appup,
// and, unless Regenerate, those the new release holds in its ebin
// directories that cover every version upgraded from.
func (b *builder) userAppups(plan *appup.Plan) error {
	for _, a := range plan.Appups {
		if file, ok := b.o.Appups[a.App]; ok {
			data, err := release.ReadFile(file, 4<<20)
			if err != nil {
				return fmt.Errorf("-appup %s: %w", a.App, err)
			}
			u, err := appup.ParseAppup(a.App, a.Version, data, file)
			if err != nil {
				return fmt.Errorf("-appup %s=%s: %w", a.App, file, err)
			}
			if err := plan.Use(u); err != nil {
				return err
			}
			continue
		}
		if b.o.Regenerate {
			continue
		}
		file := filepath.Join(plan.New.Root, "lib", a.App+"-"+a.Version, "ebin", a.App+".appup")
		data, err := release.ReadFile(file, 4<<20)
		if err != nil {
			continue // none, or unreadable: generate one
		}
		rel := relName(plan.New.Root, file)
		u, err := appup.ParseAppup(a.App, a.Version, data, rel+" in the release")
		if err == nil {
			err = plan.Use(u)
		}
		if err != nil {
			fmt.Fprintf(b.o.Log, "  not using %s (%v); generating one (-appup %s=FILE to give your own)\n", rel, err, a.App)
		}
	}
	for app := range b.o.Appups {
		if !slices.ContainsFunc(plan.Appups, func(a *appup.Appup) bool { return a.App == app }) {
			return fmt.Errorf("-appup %s: %s does not change version between the releases, so it needs no appup", app, app)
		}
	}
	return nil
}

// write puts the appups into the unpacked new release, runs systools, and
// writes the package.
func (b *builder) write(ctx context.Context, plan *appup.Plan) error {
	nw := plan.New
	put := map[string][]byte{}
	prefix, err := b.nw.prefix()
	if err != nil {
		return err
	}
	for _, a := range plan.Appups {
		rel := filepath.Join("lib", a.App+"-"+a.Version, "ebin", a.App+".appup")
		if err := os.WriteFile(filepath.Join(nw.Root, rel), []byte(a.Text()), 0o644); err != nil {
			return err
		}
		put[prefix+filepath.ToSlash(rel)] = []byte(a.Text())
	}
	rt, err := b.runtime(ctx, nw)
	if err != nil {
		return err
	}
	b.res.Runtime = rt.Desc
	fmt.Fprintf(b.o.Log, "  systools runs in %s\n", rt.Desc)
	var oldRels, path []string
	for _, old := range plan.Old {
		oldRels = append(oldRels, strings.TrimSuffix(old.RelFile, ".rel"))
	}
	// Exactly the ebin of each application of each .rel, so that systools
	// reads the .app and .appup printed here and no other.
	for _, p := range append([]*relup.Package{nw}, plan.Old...) {
		for _, a := range p.Apps {
			path = append(path, filepath.Join(p.Root, "lib", a.Name+"-"+a.Version, "ebin"))
		}
	}
	outDir := filepath.Join(b.work, "relup-out")
	if err := os.MkdirAll(outDir, 0o700); err != nil {
		return err
	}
	done := b.step("systools:make_relup from %s", versions(plan.Old))
	b.res.Warnings, err = rt.makeRelup(ctx, b.work, strings.TrimSuffix(nw.RelFile, ".rel"), oldRels, path, outDir)
	if err != nil {
		return err
	}
	done()
	relupFile, err := b.mergeRelup(nw, filepath.Join(outDir, "relup"))
	if err != nil {
		return err
	}
	put[prefix+"releases/"+nw.Version+"/relup"] = relupFile
	done = b.step("writing %s", b.o.Out)
	if b.res.SHA256, err = rewrite(b.nw.file, b.o.Out, put); err != nil {
		return err
	}
	done()
	return nil
}

// runtime picks the Erlang that runs systools: the release's own ERTS if
// it runs here, else a host Erlang of the same OTP release.
func (b *builder) runtime(ctx context.Context, nw *relup.Package) (*Runtime, error) {
	sasl := ""
	for _, a := range nw.Apps {
		if a.Name == "sasl" {
			sasl = a.Version
		}
	}
	var why string
	switch {
	case b.o.Erl != "":
		why = "-erl names the Erlang to use"
	case b.nw.rel.BundlesERTS:
		rt := bundled(nw.Root, nw.Version, nw.ERTS, sasl, b.work)
		if _, err := rt.eval(ctx, "ok"); err == nil {
			return rt, nil
		} else {
			why = fmt.Sprintf("the release's ERTS %s does not run here (%v)", nw.ERTS, err)
		}
	default:
		why = "the release has no ERTS of its own"
	}
	erl := b.o.Erl
	if erl == "" {
		erl = "erl"
	}
	rt, err := host(ctx, erl, nw.ERTS, b.work)
	if err != nil {
		return nil, fmt.Errorf("%s, and %w", why, err)
	}
	fmt.Fprintf(b.o.Log, "  %s; using the host's\n", why)
	return rt, nil
}

// mergeRelup returns the relup to ship: the generated one, plus every
// entry of the release's own relup (unless Regenerate) for a version it
// does not regenerate.
func (b *builder) mergeRelup(nw *relup.Package, generated string) ([]byte, error) {
	data, err := os.ReadFile(generated)
	if err != nil {
		return nil, fmt.Errorf("systools wrote no relup: %w", err)
	}
	if !nw.HasRelup() || b.o.Regenerate {
		return data, nil
	}
	own, err := release.ReadFile(filepath.Join(nw.Root, "releases", nw.Version, "relup"), 64<<20)
	if err != nil {
		return nil, err
	}
	gen, err := parseRelup(data)
	if err != nil {
		return nil, fmt.Errorf("the generated relup: %w", err)
	}
	old, err := parseRelup(own)
	if err != nil {
		return nil, fmt.Errorf("the release's relup: %w", err)
	}
	for i := 1; i <= 2; i++ {
		have := map[string]bool{}
		for _, e := range gen[i].(eterm.List) {
			v, _ := eterm.AsString(e.(eterm.Tuple)[0])
			have[v] = true
		}
		for _, e := range old[i].(eterm.List) {
			if v, _ := eterm.AsString(e.(eterm.Tuple)[0]); !have[v] {
				gen[i] = append(gen[i].(eterm.List), e)
			}
		}
	}
	return []byte(eterm.Format(gen) + ".\n"), nil
}

// parseRelup reads {Vsn, [{UpFromVsn, Descr, Instrs}], [{DownToVsn, ...}]}.
func parseRelup(data []byte) (eterm.Tuple, error) {
	terms, err := eterm.Parse(data)
	if err != nil {
		return nil, err
	}
	if len(terms) != 1 {
		return nil, fmt.Errorf("want one term, {Vsn, UpFrom, DownTo}")
	}
	t, ok := terms[0].(eterm.Tuple)
	if !ok || len(t) != 3 {
		return nil, fmt.Errorf("not {Vsn, UpFrom, DownTo}")
	}
	for i := 1; i <= 2; i++ {
		l, ok := eterm.AsList(t[i])
		if !ok {
			return nil, fmt.Errorf("UpFrom and DownTo must be lists")
		}
		for _, e := range l {
			if s, ok := e.(eterm.Tuple); !ok || len(s) != 3 {
				return nil, fmt.Errorf("each entry must be {Vsn, Descr, Instructions}")
			}
		}
		t[i] = eterm.List(l)
	}
	return t, nil
}

// copyFile copies src to dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func versions(ps []*relup.Package) string {
	var v []string
	for _, p := range ps {
		v = append(v, p.Version)
	}
	return strings.Join(v, ", ")
}

func relName(root, file string) string {
	r, err := filepath.Rel(root, file)
	if err != nil {
		return file
	}
	return r
}

func sortedNames(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
