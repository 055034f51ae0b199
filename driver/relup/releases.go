package relup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"
)

// ReleaseEntry is one release listed in a releases/RELEASES file.
type ReleaseEntry struct {
	Name, Version string
	// ERTS is the emulator version the release runs on.
	ERTS string
	// Libs are the release's applications and their directories.
	Libs []Lib
	// Status is permanent, current, old or unpacked.
	Status string
}

// Lib is an application of a release listed in releases/RELEASES.
type Lib struct {
	Name, Version string
	// Dir is the application's directory as the file gives it: absolute,
	// or relative to the release root, as relx writes it.
	Dir string
}

// WriteRELEASES writes <p.Root>/releases/RELEASES, which release_handler
// reads to learn which releases a node has, listing p as the permanent
// release the way release_handler:create_RELEASES/4 does, with absolute
// application directories <p.Root>/lib/<App>-<Vsn>. Mix releases ship
// without the file; relx releases ship with one. WriteRELEASES never
// replaces an existing file and returns nil without writing if there is
// one. It writes a temporary file and moves it into place, so the file is
// never seen partly written.
func WriteRELEASES(p *Package) error {
	root, err := filepath.Abs(p.Root)
	if err != nil {
		return fmt.Errorf("relup: writing RELEASES: %w", err)
	}
	dir := filepath.Join(root, "releases")
	dst := filepath.Join(dir, "RELEASES")
	if _, err := os.Lstat(dst); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("relup: writing RELEASES: %w", err)
	}
	data := append([]byte("%% coding: utf-8\n"), eterm.Format(releasesTerm(p, root))...)
	data = append(data, ".\n"...)

	tmp, err := os.CreateTemp(dir, ".RELEASES-*")
	if err != nil {
		return fmt.Errorf("relup: writing RELEASES: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails once the file is renamed
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("relup: writing RELEASES: %w", err)
	}
	// A hard link puts the file in place only if no file is there yet.
	err = os.Link(tmp.Name(), dst)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		// The file system has no hard links; rename, which replaces a file
		// written since the check above.
		if err := os.Rename(tmp.Name(), dst); err != nil {
			return fmt.Errorf("relup: writing RELEASES: %w", err)
		}
	}
	return nil
}

// releasesTerm returns the contents of a RELEASES file listing p, with root
// as its absolute root directory.
func releasesTerm(p *Package, root string) eterm.Term {
	libs := make(eterm.List, len(p.Apps))
	for i, a := range p.Apps {
		dir := filepath.Join(root, "lib", a.Name+"-"+a.Version)
		libs[i] = eterm.Tuple{eterm.Atom(a.Name), eterm.String(a.Version), eterm.String(dir)}
	}
	rel := eterm.Tuple{eterm.Atom("release"), eterm.String(p.Name), eterm.String(p.Version), eterm.String(p.ERTS), libs, eterm.Atom("permanent")}
	return eterm.List{rel}
}

// RELEASES returns the contents of a releases/RELEASES file that lists
// every package in pkgs, as release_handler would after installing them
// one by one into the release root root: the one whose version is
// permanent has that status and the others are old. Application
// directories are absolute, under root/lib.
func RELEASES(pkgs []*Package, root, permanent string) []byte {
	var list eterm.List
	for _, p := range pkgs {
		t := releasesTerm(p, root).(eterm.List)[0].(eterm.Tuple)
		if p.Version != permanent {
			t[5] = eterm.Atom("old")
		}
		list = append(list, t)
	}
	data := append([]byte("%% coding: utf-8\n"), eterm.Format(list)...)
	return append(data, ".\n"...)
}

// ReadRELEASES reads the releases listed in <root>/releases/RELEASES.
func ReadRELEASES(root string) ([]ReleaseEntry, error) {
	file := filepath.Join(root, "releases", "RELEASES")
	terms, err := consultFile(file, maxTermFile)
	if err != nil {
		return nil, err
	}
	bad := func(what string) error {
		return fmt.Errorf("relup: %s: %s", file, what)
	}
	if len(terms) != 1 {
		return nil, bad(fmt.Sprintf("holds %d terms, want 1", len(terms)))
	}
	list, ok := eterm.AsList(terms[0])
	if !ok {
		return nil, bad("not a list of releases")
	}
	entries := make([]ReleaseEntry, 0, len(list))
	for i, t := range list {
		e, ok := parseReleaseEntry(t)
		if !ok {
			return nil, bad(fmt.Sprintf("entry %d is not {release, Name, Vsn, ErtsVsn, Libs, Status}", i+1))
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func parseReleaseEntry(t eterm.Term) (ReleaseEntry, bool) {
	var e ReleaseEntry
	rel, ok := eterm.Tagged(t, "release", 6)
	if !ok {
		return e, false
	}
	for i, dst := range []*string{&e.Name, &e.Version, &e.ERTS} {
		if *dst, ok = eterm.AsString(rel[i+1]); !ok {
			return e, false
		}
	}
	libs, ok := eterm.AsList(rel[4])
	if !ok {
		return e, false
	}
	for _, l := range libs {
		tup, ok := l.(eterm.Tuple)
		if !ok || len(tup) != 3 {
			return e, false
		}
		name, ok := tup[0].(eterm.Atom)
		if !ok {
			return e, false
		}
		lib := Lib{Name: string(name)}
		if lib.Version, ok = eterm.AsString(tup[1]); !ok {
			return e, false
		}
		if lib.Dir, ok = eterm.AsString(tup[2]); !ok {
			return e, false
		}
		e.Libs = append(e.Libs, lib)
	}
	status, ok := rel[5].(eterm.Atom)
	e.Status = string(status)
	return e, ok
}
