// Package release finds a BEAM release in an unpacked tarball and tells what
// kind it is: a mix release, a relx (rebar3) release, or a Gleam
// erlang-shipment.
package release

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
)

// Kind is the tool that built a release, which decides how it starts.
type Kind string

const (
	// Mix is an Elixir `mix release`; it starts with `bin/NAME start`.
	Mix Kind = "mix"
	// Relx is a rebar3/relx release; it starts with `bin/NAME foreground`.
	Relx Kind = "relx"
	// Shipment is a `gleam export erlang-shipment` directory; it starts with
	// `entrypoint.sh run` and needs an Erlang on the host.
	Shipment Kind = "shipment"
)

// Release is one release found on disk.
type Release struct {
	// Root is the absolute directory that holds bin/, lib/ and releases/
	// (or entrypoint.sh for a shipment).
	Root string
	// Name is the release name: the name of its bin/ script.
	Name string
	// Version is the release version, from releases/start_erl.data.
	Version string
	// Kind is the tool that built it.
	Kind Kind
	// ERTS is the erts version the release was built with, from
	// releases/start_erl.data. Empty for a shipment.
	ERTS string
	// BundlesERTS is true when the release carries its own erts-VSN
	// directory; otherwise it needs an Erlang installed on the host.
	BundlesERTS bool
}

// maxDepth is how deep below the unpack directory a release root may be:
// deep enough for tarballs made of `_build/prod/rel/NAME`.
const maxDepth = 4

// Find looks for releases under dir and returns the one called name, or the
// only one when name is empty.
func Find(dir, name string) (*Release, error) {
	found, err := Scan(dir)
	if err != nil {
		return nil, err
	}
	if len(found) == 0 {
		return nil, errors.New("no release found in the tarball: expected bin/NAME and releases/start_erl.data " +
			"(mix release, rebar3 tar) or entrypoint.sh (gleam export erlang-shipment)")
	}
	if name != "" {
		for _, r := range found {
			if r.Name == name {
				return r, nil
			}
		}
		return nil, fmt.Errorf("release.name = %q is not in the tarball, which holds: %s", Clip(name), names(found))
	}
	if len(found) > 1 {
		return nil, fmt.Errorf("the tarball holds several releases (%s); set release.name in the task config to pick one", names(found))
	}
	return found[0], nil
}

// Scan returns every release under dir, sorted by name.
//
// dir is a tree the plugin unpacked, and every name in it is the release
// author's: the tree is read through an os.Root on dir, so that no path
// built from a name read from a file (a version in start_erl.data, a .rel
// file's name) resolves outside it, links included, and each such name is
// checked with ValidName as it is read.
func Scan(dir string) ([]*Release, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	t := tree{abs: abs, fsys: root.FS()}
	var found []*Release
	err = fs.WalkDir(t.fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != "." && strings.Count(p, "/") >= maxDepth {
			return fs.SkipDir
		}
		rs, err := t.atRoot(p)
		if err != nil {
			return err
		}
		if len(rs) > 0 {
			found = append(found, rs...)
			return fs.SkipDir
		}
		// Do not descend into the insides of an OTP application.
		if d.Name() == "ebin" || d.Name() == "priv" {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Name < found[j].Name })
	return found, nil
}

// tree is a directory being scanned: abs, read through fsys, an os.Root's
// file system on it. Names given to its methods are slash paths in fsys.
type tree struct {
	abs  string
	fsys fs.FS
}

func (t tree) path(name string) string { return filepath.Join(t.abs, filepath.FromSlash(name)) }

func (t tree) exists(name string) bool { _, err := fs.Stat(t.fsys, name); return err == nil }

func (t tree) isDir(name string) bool {
	fi, err := fs.Stat(t.fsys, name)
	return err == nil && fi.IsDir()
}

func (t tree) isFile(name string) bool {
	fi, err := fs.Stat(t.fsys, name)
	return err == nil && fi.Mode().IsRegular()
}

func (t tree) read(name string, limit int64) ([]byte, error) {
	return readFS(t.fsys, name, t.path(name), limit)
}

// atRoot returns the releases whose root is dir, if any.
func (t tree) atRoot(dir string) ([]*Release, error) {
	if t.exists(path.Join(dir, "releases", "start_erl.data")) && t.isDir(path.Join(dir, "bin")) {
		return t.otpReleases(dir)
	}
	if t.exists(path.Join(dir, "entrypoint.sh")) {
		r, err := t.shipment(dir)
		if err != nil {
			return nil, err
		}
		return []*Release{r}, nil
	}
	return nil, nil
}

// otpReleases reads a mix or relx release root. A relx output directory can
// hold several releases, one releases/VSN/NAME.rel each.
func (t tree) otpReleases(dir string) ([]*Release, error) {
	file := path.Join(dir, "releases", "start_erl.data")
	data, err := t.read(file, MaxStartErlSize)
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return nil, fmt.Errorf("%s: expected \"ERTS_VSN REL_VSN\", found %q; rebuild the release",
			t.path(file), Clip(strings.TrimSpace(string(data))))
	}
	erts, vsn := fields[0], fields[1]
	if err := CheckName(t.path(file), "the ERTS version", erts); err != nil {
		return nil, err
	}
	if err := CheckName(t.path(file), "the release version", vsn); err != nil {
		return nil, err
	}

	var names []string
	for _, v := range t.versions(dir) {
		ents, _ := fs.ReadDir(t.fsys, path.Join(dir, "releases", v))
		for _, e := range ents {
			n, ok := strings.CutSuffix(e.Name(), ".rel")
			if ok && ValidName(n) && !slices.Contains(names, n) && t.isFile(path.Join(dir, "bin", n)) {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no releases/VSN/NAME.rel with a matching bin/NAME script; is this a complete release?", t.path(dir))
	}

	kind := Relx
	if t.exists(path.Join(dir, "releases", "COOKIE")) || t.exists(path.Join(dir, "releases", vsn, "elixir")) {
		kind = Mix
	}
	bundles := len(t.ertsDirs(dir)) > 0

	var out []*Release
	for _, n := range names {
		out = append(out, &Release{
			Root: t.path(dir), Name: n, Version: t.versionOf(dir, n, vsn), Kind: kind,
			ERTS: erts, BundlesERTS: bundles,
		})
	}
	return out, nil
}

// versions returns the names in dir/releases that can be versions, sorted.
func (t tree) versions(dir string) []string {
	ents, _ := fs.ReadDir(t.fsys, path.Join(dir, "releases"))
	var out []string
	for _, e := range ents {
		if ValidName(e.Name()) && t.isDir(path.Join(dir, "releases", e.Name())) {
			out = append(out, e.Name())
		}
	}
	return out
}

// versionOf returns the version of release name: the one in start_erl.data
// if that version has the release's .rel, otherwise the newest that does.
// current is a ValidName, and so is every version returned.
func (t tree) versionOf(dir, name, current string) string {
	if t.exists(path.Join(dir, "releases", current, name+".rel")) {
		return current
	}
	var with []string
	for _, v := range t.versions(dir) {
		if t.isFile(path.Join(dir, "releases", v, name+".rel")) {
			with = append(with, v)
		}
	}
	if len(with) == 0 {
		return current
	}
	return with[len(with)-1]
}

func (t tree) ertsDirs(dir string) []string {
	ents, _ := fs.ReadDir(t.fsys, dir)
	var out []string
	for _, e := range ents {
		v, ok := strings.CutPrefix(e.Name(), "erts-")
		if ok && ValidName(v) && t.isDir(path.Join(dir, e.Name())) {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	return out
}

var (
	packageLine = regexp.MustCompile(`^PACKAGE=["']?([A-Za-z0-9_]+)["']?\s*$`)
	appVsn      = regexp.MustCompile(`\{vsn,\s*"([^"]+)"\}`)
)

// shipment reads a `gleam export erlang-shipment` directory: entrypoint.sh
// names the package with a PACKAGE= line.
func (t tree) shipment(dir string) (*Release, error) {
	data, err := t.read(path.Join(dir, "entrypoint.sh"), MaxFileSize)
	if err != nil {
		return nil, err
	}
	name := ""
	for line := range strings.Lines(string(data)) {
		if m := packageLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			name = m[1]
			break
		}
	}
	if name == "" {
		return nil, fmt.Errorf("%s: no PACKAGE= line; is this a `gleam export erlang-shipment` entrypoint?", t.path(path.Join(dir, "entrypoint.sh")))
	}
	if err := CheckName(t.path(path.Join(dir, "entrypoint.sh")), "the package name", name); err != nil {
		return nil, err
	}
	vsn := ""
	app, err := t.read(path.Join(dir, name, "ebin", name+".app"), MaxFileSize)
	if errors.Is(err, ErrTooLarge) {
		return nil, err
	}
	if m := appVsn.FindSubmatch(app); m != nil {
		vsn = string(m[1])
	}
	if vsn != "" && !ValidName(vsn) {
		return nil, CheckName(t.path(path.Join(dir, name, "ebin", name+".app")), "the application version", vsn)
	}
	return &Release{Root: t.path(dir), Name: name, Version: vsn, Kind: Shipment}, nil
}

// Check reports whether the release can run on this host: a release without
// its own erts needs hostERTS (the host's erts version, or "" when no Erlang
// is installed), and a bundled erts must be built for this machine.
func (r *Release) Check(hostERTS string) error {
	if !r.BundlesERTS {
		if hostERTS == "" {
			what := "was built with include_erts: false"
			if r.Kind == Shipment {
				what = "is a Gleam erlang-shipment"
			}
			return fmt.Errorf("release %s %s, so it needs Erlang on the host, and none was found in PATH; "+
				"install Erlang/OTP on the client or rebuild the release with include_erts: true", r.Name, what)
		}
		return nil
	}
	root, err := os.OpenRoot(r.Root)
	if err != nil {
		return fmt.Errorf("release %s: %w", r.Name, err)
	}
	defer root.Close()
	t := tree{abs: r.Root, fsys: root.FS()}
	for _, d := range t.ertsDirs(".") {
		if err := checkArch(root, path.Join(d, "bin", "beam.smp")); err != nil {
			return fmt.Errorf("release %s: %w", r.Name, err)
		}
	}
	return nil
}

var goarchToELF = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"386":     elf.EM_386,
	"arm":     elf.EM_ARM,
	"riscv64": elf.EM_RISCV,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
}

func checkArch(root *os.Root, bin string) error {
	file, err := root.Open(bin)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is missing: the bundled erts is incomplete", bin)
	}
	if err != nil {
		return err
	}
	defer file.Close()
	f, err := elf.NewFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is missing: the bundled erts is incomplete", bin)
	}
	if err != nil {
		return fmt.Errorf("%s is not a Linux executable (%v): the bundled erts was built for another OS; "+
			"build the release on linux/%s", bin, err, runtime.GOARCH)
	}
	defer f.Close()
	want, ok := goarchToELF[runtime.GOARCH]
	if ok && f.Machine != want {
		return fmt.Errorf("the bundled erts (%s) is built for %s, but this client is linux/%s; "+
			"build the release on linux/%s or set include_erts: false", path.Base(path.Dir(path.Dir(bin))),
			f.Machine, runtime.GOARCH, runtime.GOARCH)
	}
	return nil
}

// maxNamed is how many releases an error lists.
const maxNamed = 8

func names(rs []*Release) string {
	var s []string
	for i, r := range rs {
		if i == maxNamed {
			s = append(s, fmt.Sprintf("and %d more", len(rs)-i))
			break
		}
		s = append(s, fmt.Sprintf("%s %s (%s)", Clip(r.Name), Clip(r.Version), r.Kind))
	}
	return strings.Join(s, ", ")
}
