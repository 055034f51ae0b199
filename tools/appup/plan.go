// Package appup derives the .appup files of a hot upgrade from two builds
// of a release, the way Distillery's appup generator and
// rebar3_appup_plugin do, so that an application needs no hand-written
// upgrade instructions:
//
//   - modules are compared by their beam_lib MD5 (code, atoms, imports,
//     exports, funs and literals), so debug info and compile options do not
//     count as changes;
//   - an added module gets add_module and a deleted one delete_module;
//   - a changed supervisor gets a supervisor update, a changed module whose
//     new code exports code_change/3,4 or system_code_change/4 an advanced
//     update, and any other changed module load_module;
//   - the dependencies of each instruction are the changed modules its new
//     code calls, and instructions come after those they depend on;
//   - downgrades use the same kinds of instruction, since release_handler
//     runs code_change in the newer code in both directions;
//   - purges are soft_purge both before and after, never brutal_purge.
//
// It also says what a hot upgrade cannot do: changes that need an emulator
// restart are refused, and supervision-tree changes are warned about.
package appup

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
)

// restartApps are applications whose change needs a new emulator: systools
// writes restart_new_emulator for the OTP core, and Elixir's own modules
// are loaded by everything.
var restartApps = []string{"kernel", "stdlib", "sasl", "erts", "elixir"}

// Plan is what a hot upgrade from one or more releases to a new one takes.
type Plan struct {
	Old []*relup.Package
	New *relup.Package
	// Appups holds one entry for every application whose version changed,
	// sorted by name.
	Appups []*Appup
	// Added and Removed are applications that systools starts or stops
	// from the difference of the .rel files, each with the versions it
	// applies to.
	Added, Removed []string
	// Warnings are what a hot upgrade will not do that the new code may
	// expect; Notes are changes it handles that are worth knowing.
	Warnings, Notes []string
	// Blockers are what generated instructions would get wrong; each
	// refuses the upgrade unless the user's own appup replaces the
	// application's (see Refusal).
	Blockers []Blocker
	// unversioned are refusals no appup can lift.
	unversioned []string
}

// Blocker is a change in one application that generated instructions
// cannot make safely.
type Blocker struct {
	App, Reason string
}

// Refusal returns the refusal that the plan's blockers make, for
// applications whose appup is still the generated one, or nil.
func (p *Plan) Refusal() error {
	why := append([]string(nil), p.unversioned...)
	for _, b := range p.Blockers {
		for _, a := range p.Appups {
			if a.App == b.App && a.Source == "generated" {
				why = appendNew(why, b.Reason+fmt.Sprintf("; give your own appup for %s (-appup %s=FILE), or ship with a full deploy", b.App, b.App))
			}
		}
	}
	if len(why) > 0 {
		return &Refusal{Reasons: why}
	}
	return nil
}

// Appup is the .appup of one application's new version.
type Appup struct {
	App, Version string
	Up, Down     []Step
	// Source says where the appup came from: "generated", or the file it
	// was read from.
	Source string

	raw []byte // the file as read, for appups not generated
}

// Step is one entry of an appup: the instructions from (or to) one
// version of the application.
type Step struct {
	Vsn    string
	Instrs []eterm.Term
}

// Refusal is returned when a hot upgrade is impossible; each reason names
// what changed and says what to do.
type Refusal struct{ Reasons []string }

func (r *Refusal) Error() string {
	return "no hot upgrade is possible: " + strings.Join(r.Reasons, "; ")
}

// Compare plans the hot upgrade to nw from each release in olds. All are
// unpacked releases with the same name.
func Compare(olds []*relup.Package, nw *relup.Package) (*Plan, error) {
	p := &Plan{Old: olds, New: nw}
	if err := p.refuse(); err != nil {
		return nil, err
	}
	c := &comparer{plan: p, apps: map[string]*app{}}
	appups := map[string]*Appup{}
	added, removed := map[string][]string{}, map[string][]string{}
	for _, old := range olds {
		oldApps := map[string]relup.App{}
		for _, a := range old.Apps {
			oldApps[a.Name] = a
		}
		for _, a := range nw.Apps {
			o, ok := oldApps[a.Name]
			switch {
			case !ok:
				added[a.Name] = appendNew(added[a.Name], old.Version)
			case o.Version != a.Version:
				if err := c.appup(appups, old, o, a); err != nil {
					return nil, err
				}
			default:
				if err := c.sameVersion(old, a); err != nil {
					return nil, err
				}
			}
			delete(oldApps, a.Name)
		}
		for name := range oldApps {
			removed[name] = appendNew(removed[name], old.Version)
		}
	}
	for _, a := range sortedKeys(appups) {
		p.Appups = append(p.Appups, appups[a])
	}
	for _, a := range sortedKeys(added) {
		p.Added = append(p.Added, fmt.Sprintf("%s (from %s)", a, strings.Join(added[a], ", ")))
	}
	for _, a := range sortedKeys(removed) {
		p.Removed = append(p.Removed, fmt.Sprintf("%s (from %s)", a, strings.Join(removed[a], ", ")))
	}
	if err := c.supervision(); err != nil {
		return nil, err
	}
	if err := c.blockers(); err != nil {
		return nil, err
	}
	if err := c.configChanges(); err != nil {
		return nil, err
	}
	return p, nil
}

// refuse returns a Refusal when some old release cannot be hot-upgraded
// to the new one at all.
func (p *Plan) refuse() error {
	var why []string
	if !hasApp(p.New, "sasl") {
		why = append(why, fmt.Sprintf("%s %s does not include sasl, which holds release_handler: add sasl to the release "+
			"(mix: releases: [%s: [applications: [sasl: :permanent]]]; relx: {release, ..., [sasl, ...]}) and ship it with a full deploy",
			p.New.Name, p.New.Version, p.New.Name))
	}
	for _, old := range p.Old {
		from := fmt.Sprintf("%s→%s", old.Version, p.New.Version)
		switch {
		case old.Name != p.New.Name:
			why = append(why, fmt.Sprintf("release %s is not %s: a hot upgrade stays within one release", old.Name, p.New.Name))
			continue
		case old.Version == p.New.Version:
			why = append(why, fmt.Sprintf("-from and -to are both version %s: give the new release a new version", old.Version))
			continue
		case !hasApp(old, "sasl"):
			why = append(why, fmt.Sprintf("%s %s does not run sasl, so its nodes cannot take a hot upgrade: "+
				"ship %s with a full deploy (it includes sasl, so the next one can go hot)", old.Name, old.Version, p.New.Version))
			continue
		}
		if old.ERTS != p.New.ERTS {
			why = append(why, fmt.Sprintf("%s: ERTS changes from %s to %s, which needs a new emulator: ship it with a full deploy",
				from, old.ERTS, p.New.ERTS))
		}
		for _, name := range restartApps {
			o, n := appVersion(old, name), appVersion(p.New, name)
			if o != "" && n != "" && o != n {
				why = append(why, fmt.Sprintf("%s: %s changes from %s to %s, which needs an emulator restart: ship it with a full deploy",
					from, name, o, n))
			}
		}
	}
	if len(why) > 0 {
		return &Refusal{Reasons: why}
	}
	return nil
}

// change is an application whose version changed from an old release.
type change struct {
	rel     *relup.Package // the old release
	old, nw *app
}

// comparer reads applications once and fills a Plan.
type comparer struct {
	plan *Plan
	apps map[string]*app // by root, name and version
	// changed holds the old and new versions of each changed application.
	changed []change
}

func (c *comparer) read(root, name, vsn string) (*app, error) {
	key := root + "\x00" + name + "\x00" + vsn
	if a, ok := c.apps[key]; ok {
		return a, nil
	}
	a, err := readApp(root, name, vsn)
	if err != nil {
		return nil, err
	}
	c.apps[key] = a
	return a, nil
}

// appup adds the steps between the old and new versions of an application
// to its appup.
func (c *comparer) appup(appups map[string]*Appup, old *relup.Package, o, n relup.App) error {
	up := appups[n.Name]
	if up == nil {
		up = &Appup{App: n.Name, Version: n.Version, Source: "generated"}
		appups[n.Name] = up
	}
	if slices.ContainsFunc(up.Up, func(s Step) bool { return s.Vsn == o.Version }) {
		return nil // another old release has the same version of it
	}
	oa, err := c.read(old.Root, o.Name, o.Version)
	if err != nil {
		return err
	}
	na, err := c.read(c.plan.New.Root, n.Name, n.Version)
	if err != nil {
		return err
	}
	up.Up = append(up.Up, Step{Vsn: o.Version, Instrs: instructions(oa, na, na)})
	up.Down = append(up.Down, Step{Vsn: o.Version, Instrs: instructions(na, oa, na)})
	c.changed = append(c.changed, change{old, oa, na})
	return nil
}

// sameVersion warns when an application kept its version but its code
// changed: no relup loads it.
func (c *comparer) sameVersion(old *relup.Package, a relup.App) error {
	oa, err := c.read(old.Root, a.Name, a.Version)
	if err != nil {
		return err
	}
	na, err := c.read(c.plan.New.Root, a.Name, a.Version)
	if err != nil {
		return err
	}
	var changed []string
	for _, m := range sortedKeys(na.modules) {
		if om, ok := oa.modules[m]; !ok || om.MD5 != na.modules[m].MD5 {
			changed = append(changed, m)
		}
	}
	for _, m := range sortedKeys(oa.modules) {
		if _, ok := na.modules[m]; !ok {
			changed = append(changed, m)
		}
	}
	if len(changed) > 0 {
		c.plan.unversioned = appendNew(c.plan.unversioned, fmt.Sprintf(
			"%s keeps version %s from %s, but its modules differ (%s): neither a relup nor the node's release root "+
				"takes new code under an old version, so bump %s's version", a.Name, a.Version, old.Version,
			list(displayList(changed)), a.Name))
	}
	return nil
}

func hasApp(p *relup.Package, name string) bool { return appVersion(p, name) != "" }

func appVersion(p *relup.Package, name string) string {
	for _, a := range p.Apps {
		if a.Name == name {
			return a.Version
		}
	}
	return ""
}

func appendNew(l []string, s string) []string {
	if slices.Contains(l, s) {
		return l
	}
	return append(l, s)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func displayList(mods []string) []string {
	out := make([]string, len(mods))
	for i, m := range mods {
		out[i] = display(m)
	}
	return out
}

// list joins names for a message, eliding beyond eight.
func list(names []string) string {
	if len(names) > 8 {
		return strings.Join(names[:8], ", ") + fmt.Sprintf(" and %d more", len(names)-8)
	}
	return strings.Join(names, ", ")
}
