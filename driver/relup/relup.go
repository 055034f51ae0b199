// Package relup reads the Erlang term files of an unpacked OTP release, as
// built by mix release or rebar3 (relx), and decides before a running node is
// touched whether the release is a valid hot-upgrade package for that node:
// the checks OTP's release_handler would make, with errors that say what to
// do instead. It also writes the releases/RELEASES file that mix releases
// ship without and that release_handler needs.
//
// The release layout it reads is:
//
//	releases/start_erl.data        "ERTS_VSN REL_VSN"
//	releases/REL_VSN/NAME.rel      {release, {Name, Vsn}, {erts, Vsn}, Apps}.
//	releases/REL_VSN/relup         {Vsn, UpFrom, DownTo}, when there is one
//	releases/RELEASES              written by relx and by [WriteRELEASES]
//
// eterm.Term files are read with [eterm.Parse], a reader of the Erlang term syntax that
// file:consult/1 accepts.
package relup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"
)

// Package is a release unpacked on disk, seen as a hot-upgrade candidate.
type Package struct {
	// Root is the absolute directory that holds lib/ and releases/.
	Root string
	// Name and Version identify the release, from its .rel file.
	Name, Version string
	// ERTS is the emulator version the release runs on, from the .rel file.
	ERTS string
	// Apps are the release's applications in .rel file order.
	Apps []App
	// RelFile is the absolute path of releases/<Version>/<Name>.rel.
	RelFile string

	relup *relupFile // nil when the release has no relup
}

// App is an application of a release.
type App struct {
	Name, Version string
	// Type is how the release starts the application: permanent (the
	// default), transient, temporary, load or none.
	Type string
}

// relupFile holds a release's relup: the instructions that take a node to
// the release from other versions, and back.
type relupFile struct {
	path     string // relative to Root, with slashes, for messages
	up, down []step
}

// step is one entry of a relup.
type step struct {
	vsn    string // the version upgraded from or downgraded to
	instrs []eterm.Term
}

// Inspect reads the release in root. Its version is the one named in
// releases/start_erl.data, since a root can hold the directories of older
// releases too. name is the release name, the base name of its .rel file;
// an empty name selects the only .rel file in releases/<version>/.
func Inspect(root, name string) (*Package, error) {
	_, vsn, err := readStartErl(root)
	if err != nil {
		return nil, err
	}
	return InspectVersion(root, name, vsn)
}

// InspectVersion reads version vsn of the release in root, which need not
// be the one releases/start_erl.data names: a release root that took hot
// upgrades holds several.
func InspectVersion(root, name, vsn string) (*Package, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("relup: %w", err)
	}
	if !isPathElem(vsn) {
		return nil, fmt.Errorf("relup: invalid release version %q", clip(vsn))
	}
	relDir := filepath.Join(root, "releases", vsn)
	if name == "" {
		if name, err = onlyRelFile(relDir); err != nil {
			return nil, err
		}
	} else if !isPathElem(name) {
		return nil, fmt.Errorf("relup: invalid release name %q", clip(name))
	}
	p := &Package{Root: root, RelFile: filepath.Join(relDir, name+".rel")}
	if err := p.readRel(); err != nil {
		return nil, err
	}
	if p.Name != name {
		return nil, fmt.Errorf("relup: %s names release %q, not %q", p.RelFile, clip(p.Name), clip(name))
	}
	if p.Version != vsn {
		return nil, fmt.Errorf("relup: %s is for version %s, not %s", p.RelFile, clip(p.Version), clip(vsn))
	}
	if err := p.readRelup(); err != nil {
		return nil, err
	}
	return p, nil
}

// RelFileIn returns where the package's .rel file is under another release
// root: the node's, once the package has joined it.
func (p *Package) RelFileIn(root string) string {
	return filepath.Join(root, "releases", p.Version, p.Name+".rel")
}

// AppNames returns the names of the applications the release starts:
// those of type permanent, transient or temporary.
func (p *Package) AppNames() []string {
	var out []string
	for _, a := range p.Apps {
		switch a.Type {
		case "load", "none":
		default:
			out = append(out, a.Name)
		}
	}
	return out
}

// HasRelup reports whether the release has a releases/<Version>/relup file.
func (p *Package) HasRelup() bool {
	return p.relup != nil
}

// UpFrom returns the versions the release's relup upgrades from, in
// version order. It is empty when there is no relup.
func (p *Package) UpFrom() []string {
	if p.relup == nil {
		return nil
	}
	return stepVersions(p.relup.up)
}

// DownTo returns the versions the release's relup downgrades to, in
// version order. It is empty when there is no relup.
func (p *Package) DownTo() []string {
	if p.relup == nil {
		return nil
	}
	return stepVersions(p.relup.down)
}

// readStartErl returns the two versions in releases/start_erl.data.
func readStartErl(root string) (erts, vsn string, err error) {
	file := filepath.Join(root, "releases", "start_erl.data")
	data, err := readFile(file, maxStartErl)
	if err != nil {
		return "", "", fmt.Errorf("relup: reading the release version: %w", err)
	}
	f := strings.Fields(string(data))
	if len(f) != 2 || !isPathElem(f[1]) {
		return "", "", fmt.Errorf("relup: %s: want %q, got %q", file, "ERTS_VSN REL_VSN", clip(string(data)))
	}
	return f[0], f[1], nil
}

// onlyRelFile returns the release name of the only .rel file in dir.
func onlyRelFile(dir string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("relup: %w", err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".rel") && !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	switch len(names) {
	case 0:
		return "", fmt.Errorf("relup: no .rel file in %s", dir)
	case 1:
		return strings.TrimSuffix(names[0], ".rel"), nil
	}
	return "", fmt.Errorf("relup: %s holds several .rel files (%s); name the release to use", dir, listClipped(names))
}

// consultFile reads a file of terms the way file:consult/1 does, if it
// holds at most limit bytes.
func consultFile(file string, limit int64) ([]eterm.Term, error) {
	data, err := readFile(file, limit)
	if err != nil {
		return nil, fmt.Errorf("relup: %w", err)
	}
	terms, err := eterm.Parse(data)
	if err != nil {
		var se *eterm.SyntaxError
		if errors.As(err, &se) {
			se.File = file
		}
		return nil, err
	}
	return terms, nil
}

// readRel fills p from the .rel file p.RelFile.
func (p *Package) readRel() error {
	terms, err := consultFile(p.RelFile, maxTermFile)
	if err != nil {
		return err
	}
	bad := func(what string) error {
		return fmt.Errorf("relup: %s: %s", p.RelFile, what)
	}
	if len(terms) != 1 {
		return bad(fmt.Sprintf("holds %d terms, want 1", len(terms)))
	}
	rel, ok := eterm.Tagged(terms[0], "release", 4)
	if !ok {
		return bad("not a release file: want {release, {Name, Vsn}, {erts, Vsn}, Apps}")
	}
	id, ok := rel[1].(eterm.Tuple)
	if ok = ok && len(id) == 2; ok {
		p.Name, ok = eterm.AsString(id[0])
		if ok {
			p.Version, ok = eterm.AsString(id[1])
		}
	}
	if !ok {
		return bad("the release name and version are not {Name, Vsn} strings")
	}
	erts, ok := eterm.Tagged(rel[2], "erts", 2)
	if ok {
		p.ERTS, ok = eterm.AsString(erts[1])
	}
	if !ok || !isPathElem(p.ERTS) {
		return bad("the emulator version is not {erts, Vsn}")
	}
	apps, ok := eterm.AsList(rel[3])
	if !ok {
		return bad("the applications are not a list")
	}
	for i, a := range apps {
		app, ok := parseApp(a)
		if !ok {
			return bad(fmt.Sprintf("application %d is not {App, Vsn[, Type][, IncApps]}: %s", i+1, clip(string(eterm.Format(a)))))
		}
		// lib/NAME-VSN becomes a path.
		if !isPathElem(app.Name) || !isPathElem(app.Version) {
			return bad(fmt.Sprintf("application %d has an invalid name or version: %s", i+1, clip(string(eterm.Format(a)))))
		}
		p.Apps = append(p.Apps, app)
	}
	return nil
}

// parseApp reads {App, Vsn}, {App, Vsn, Type}, {App, Vsn, IncApps} or
// {App, Vsn, Type, IncApps}.
func parseApp(t eterm.Term) (App, bool) {
	tup, ok := t.(eterm.Tuple)
	if !ok || len(tup) < 2 || len(tup) > 4 {
		return App{}, false
	}
	name, ok := tup[0].(eterm.Atom)
	if !ok {
		return App{}, false
	}
	vsn, ok := eterm.AsString(tup[1])
	if !ok {
		return App{}, false
	}
	app := App{Name: string(name), Version: vsn, Type: "permanent"}
	rest := tup[2:]
	if len(rest) > 0 {
		if typ, ok := rest[0].(eterm.Atom); ok {
			app.Type = string(typ)
			rest = rest[1:]
		}
	}
	if len(rest) > 0 {
		if _, ok := eterm.AsList(rest[0]); !ok {
			return App{}, false
		}
		rest = rest[1:]
	}
	return app, len(rest) == 0
}

// readRelup reads releases/<Version>/relup, if it exists.
func (p *Package) readRelup() error {
	rel := path.Join("releases", p.Version, "relup")
	file := filepath.Join(p.Root, filepath.FromSlash(rel))
	terms, err := consultFile(file, maxRelup)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	bad := func(what string) error {
		return fmt.Errorf("relup: %s: %s", file, what)
	}
	if len(terms) != 1 {
		return bad(fmt.Sprintf("holds %d terms, want 1", len(terms)))
	}
	top, ok := terms[0].(eterm.Tuple)
	if !ok || len(top) != 3 {
		return bad("not a relup: want {Vsn, UpFrom, DownTo}")
	}
	if vsn, ok := eterm.AsString(top[0]); !ok || vsn != p.Version {
		return bad(fmt.Sprintf("is for version %s, not %s", clip(string(eterm.Format(top[0]))), clip(p.Version)))
	}
	r := &relupFile{path: rel}
	if r.up, err = parseSteps(top[1]); err != nil {
		return bad("upgrade " + err.Error())
	}
	if r.down, err = parseSteps(top[2]); err != nil {
		return bad("downgrade " + err.Error())
	}
	p.relup = r
	return nil
}

// parseSteps reads a list of {Vsn, Descr, Instructions}.
func parseSteps(t eterm.Term) ([]step, error) {
	entries, ok := eterm.AsList(t)
	if !ok {
		return nil, errors.New("entries are not a list")
	}
	steps := make([]step, 0, len(entries))
	for i, e := range entries {
		tup, ok := e.(eterm.Tuple)
		var s step
		if ok = ok && len(tup) == 3; ok {
			s.vsn, ok = eterm.AsString(tup[0])
			if ok {
				s.instrs, ok = eterm.AsList(tup[2])
			}
		}
		if !ok {
			return nil, fmt.Errorf("entry %d is not {Vsn, Descr, Instructions}", i+1)
		}
		steps = append(steps, s)
	}
	return steps, nil
}
