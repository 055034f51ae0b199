package appup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

// maxAppFile bounds an .app or .appup file.
const maxAppFile = 4 << 20

// app is one version of an application as a release holds it.
type app struct {
	name, vsn string
	dir       string             // lib/NAME-VSN, absolute
	modules   map[string]*Module // by module name, from the .app modules list
}

// readApp reads lib/NAME-VSN/ebin of the release in root: the modules its
// .app file lists, each from its .beam file.
func readApp(root, name, vsn string) (*app, error) {
	if !pathElem(name) || !pathElem(vsn) {
		return nil, fmt.Errorf("invalid application %q version %q", release.Clip(name), release.Clip(vsn))
	}
	dir := filepath.Join(root, "lib", name+"-"+vsn)
	appFile := filepath.Join(dir, "ebin", name+".app")
	data, err := release.ReadFile(appFile, maxAppFile)
	if err != nil {
		return nil, fmt.Errorf("application %s %s: %w", name, vsn, err)
	}
	terms, err := eterm.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", appFile, err)
	}
	mods, err := appModules(terms)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", appFile, err)
	}
	a := &app{name: name, vsn: vsn, dir: dir, modules: map[string]*Module{}}
	for _, m := range mods {
		if !pathElem(m) {
			return nil, fmt.Errorf("%s: invalid module name %q", appFile, release.Clip(m))
		}
		file := filepath.Join(dir, "ebin", m+".beam")
		b, err := release.ReadFile(file, maxBeam)
		if err != nil {
			return nil, fmt.Errorf("application %s %s lists module %s: %w", name, vsn, release.Clip(m), err)
		}
		mod, err := ReadBeam(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if mod.Name != m {
			return nil, fmt.Errorf("%s holds module %q", file, release.Clip(mod.Name))
		}
		a.modules[m] = mod
	}
	return a, nil
}

// appModules returns the modules key of an .app file's
// {application, Name, Props} term.
func appModules(terms []eterm.Term) ([]string, error) {
	if len(terms) != 1 {
		return nil, errors.New("expected one {application, Name, Properties} term")
	}
	t, ok := eterm.Tagged(terms[0], "application", 3)
	if !ok {
		return nil, errors.New("expected {application, Name, Properties}")
	}
	props, ok := eterm.AsList(t[2])
	if !ok {
		return nil, errors.New("application properties are not a list")
	}
	for _, p := range props {
		kv, ok := eterm.Tagged(p, "modules", 2)
		if !ok {
			continue
		}
		list, ok := eterm.AsList(kv[1])
		if !ok {
			return nil, errors.New("modules is not a list")
		}
		var out []string
		for _, e := range list {
			a, ok := e.(eterm.Atom)
			if !ok {
				return nil, errors.New("modules holds a non-atom")
			}
			out = append(out, string(a))
		}
		sort.Strings(out)
		return out, nil
	}
	return nil, nil
}

func pathElem(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00")
}

// readOptional reads a file that a release may lack; a missing file reads
// as nil.
func readOptional(file string) ([]byte, error) {
	b, err := release.ReadFile(file, maxAppFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}
