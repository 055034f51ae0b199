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
func Scan(dir string) ([]*Release, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var found []*Release
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(abs, p)
		if rel != "." && strings.Count(rel, string(filepath.Separator)) >= maxDepth {
			return fs.SkipDir
		}
		rs, err := atRoot(p)
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

// atRoot returns the releases whose root is dir, if any.
func atRoot(dir string) ([]*Release, error) {
	if exists(filepath.Join(dir, "releases", "start_erl.data")) && isDir(filepath.Join(dir, "bin")) {
		return otpReleases(dir)
	}
	if exists(filepath.Join(dir, "entrypoint.sh")) {
		r, err := shipment(dir)
		if err != nil {
			return nil, err
		}
		return []*Release{r}, nil
	}
	return nil, nil
}

// otpReleases reads a mix or relx release root. A relx output directory can
// hold several releases, one releases/VSN/NAME.rel each.
func otpReleases(dir string) ([]*Release, error) {
	data, err := ReadFile(filepath.Join(dir, "releases", "start_erl.data"), MaxStartErlSize)
	if err != nil {
		return nil, err
	}
	fields := strings.Fields(string(data))
	if len(fields) != 2 {
		return nil, fmt.Errorf("%s: expected \"ERTS_VSN REL_VSN\", found %q; rebuild the release",
			filepath.Join(dir, "releases", "start_erl.data"), Clip(strings.TrimSpace(string(data))))
	}
	erts, vsn := fields[0], fields[1]

	rels, _ := filepath.Glob(filepath.Join(dir, "releases", "*", "*.rel"))
	var names []string
	for _, r := range rels {
		n := strings.TrimSuffix(filepath.Base(r), ".rel")
		if !slices.Contains(names, n) && isFile(filepath.Join(dir, "bin", n)) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: no releases/VSN/NAME.rel with a matching bin/NAME script; is this a complete release?", dir)
	}

	kind := Relx
	if exists(filepath.Join(dir, "releases", "COOKIE")) || exists(filepath.Join(dir, "releases", vsn, "elixir")) {
		kind = Mix
	}
	bundles := len(ertsDirs(dir)) > 0

	var out []*Release
	for _, n := range names {
		out = append(out, &Release{
			Root: dir, Name: n, Version: versionOf(dir, n, vsn), Kind: kind,
			ERTS: erts, BundlesERTS: bundles,
		})
	}
	return out, nil
}

// versionOf returns the version of release name: the one in start_erl.data
// if that version has the release's .rel, otherwise the newest that does.
func versionOf(dir, name, current string) string {
	if exists(filepath.Join(dir, "releases", current, name+".rel")) {
		return current
	}
	rels, _ := filepath.Glob(filepath.Join(dir, "releases", "*", name+".rel"))
	sort.Strings(rels)
	if len(rels) == 0 {
		return current
	}
	return filepath.Base(filepath.Dir(rels[len(rels)-1]))
}

var (
	packageLine = regexp.MustCompile(`^PACKAGE=["']?([A-Za-z0-9_]+)["']?\s*$`)
	appVsn      = regexp.MustCompile(`\{vsn,\s*"([^"]+)"\}`)
)

// shipment reads a `gleam export erlang-shipment` directory: entrypoint.sh
// names the package with a PACKAGE= line.
func shipment(dir string) (*Release, error) {
	data, err := ReadFile(filepath.Join(dir, "entrypoint.sh"), MaxFileSize)
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
		return nil, fmt.Errorf("%s: no PACKAGE= line; is this a `gleam export erlang-shipment` entrypoint?", filepath.Join(dir, "entrypoint.sh"))
	}
	vsn := ""
	app, err := ReadFile(filepath.Join(dir, name, "ebin", name+".app"), MaxFileSize)
	if errors.Is(err, ErrTooLarge) {
		return nil, err
	}
	if m := appVsn.FindSubmatch(app); m != nil {
		vsn = string(m[1])
	}
	return &Release{Root: dir, Name: name, Version: vsn, Kind: Shipment}, nil
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
	for _, d := range ertsDirs(r.Root) {
		beam := filepath.Join(d, "bin", "beam.smp")
		if err := checkArch(beam); err != nil {
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

func checkArch(bin string) error {
	f, err := elf.Open(bin)
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
			"build the release on linux/%s or set include_erts: false", filepath.Base(filepath.Dir(filepath.Dir(bin))),
			f.Machine, runtime.GOARCH, runtime.GOARCH)
	}
	return nil
}

func ertsDirs(root string) []string {
	m, _ := filepath.Glob(filepath.Join(root, "erts-*"))
	var out []string
	for _, d := range m {
		if isDir(d) {
			out = append(out, d)
		}
	}
	return out
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

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func isDir(p string) bool { fi, err := os.Stat(p); return err == nil && fi.IsDir() }

func isFile(p string) bool { fi, err := os.Stat(p); return err == nil && fi.Mode().IsRegular() }
