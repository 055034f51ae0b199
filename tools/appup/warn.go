package appup

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
)

// supervision warns about what a hot upgrade leaves as it was: children
// that supervisors (or Elixir applications, which start the top
// supervisor) gained or lost, and stateful processes whose code_change
// release_handler cannot find. Children are found the way they are
// written: a supervisor names each child's module, so a child module
// appears in its atom table.
func (c *comparer) supervision() error {
	if len(c.changed) == 0 {
		return nil
	}
	newMods, err := c.allModules(c.plan.New)
	if err != nil {
		return err
	}
	var owners []*Module
	for _, m := range newMods {
		if hasAny(m.Behaviours, ownerBehaviours) {
			owners = append(owners, m)
		}
	}
	for _, ch := range c.changed {
		oa, na := ch.old, ch.nw
		oldMods, err := c.allModules(ch.rel)
		if err != nil {
			return err
		}
		for _, name := range sortedKeys(na.modules) {
			nm, om := na.modules[name], oa.modules[name]
			if om != nil && om.MD5 == nm.MD5 {
				continue
			}
			if hasAny(nm.Behaviours, ownerBehaviours) {
				c.children(om, nm, oldMods, newMods)
			}
			if om != nil && hasAny(nm.Behaviours, statefulBehaviours) && !named(owners, name) {
				c.warn(fmt.Sprintf(
					"%s (%s) is a stateful process that no supervisor or application in %s names: release_handler finds "+
						"processes through their supervisors' child specs, so if %s runs outside a supervisor "+
						"its state is not converted (under a DynamicSupervisor, its child spec's modules must name it)",
					display(name), displayAll(nm.Behaviours), c.plan.New.Version, display(name)))
			}
		}
	}
	return nil
}

// children warns about child modules that a changed supervisor (or
// application) om → nm gained or lost.
func (c *comparer) children(om, nm *Module, oldMods, newMods map[string]*Module) {
	var before []string
	if om != nil {
		before = om.Atoms
	}
	for _, a := range nm.Atoms {
		if a == nm.Name || slices.Contains(before, a) || !isChild(newMods[a]) {
			continue
		}
		c.warn(fmt.Sprintf(
			"%s: child %s is new; a hot upgrade does not start it (start it from code_change, or ship with a full deploy)",
			display(nm.Name), display(a)))
	}
	if om == nil {
		return
	}
	for _, a := range om.Atoms {
		if a == om.Name || slices.Contains(nm.Atoms, a) || !isChild(oldMods[a]) || newMods[a] == nil {
			continue // a deleted child module is a blocker
		}
		c.warn(fmt.Sprintf(
			"%s: child %s is gone from the new code; a hot upgrade leaves it running until the next restart",
			display(nm.Name), display(a)))
	}
}

// isChild reports whether a module can be a supervisor's child: a process
// behaviour, or an Elixir child_spec/1.
func isChild(m *Module) bool {
	if m == nil {
		return false
	}
	return hasAny(m.Behaviours, statefulBehaviours) || hasAny(m.Behaviours, supervisorBehaviours) ||
		m.Exports["child_spec/1"] || hasAny(m.Behaviours, []string{"supervisor_bridge", "Elixir.Task"})
}

// named reports whether a module's atom table (other than its own name)
// names mod.
func named(owners []*Module, mod string) bool {
	for _, o := range owners {
		if o.Name != mod && slices.Contains(o.Atoms, mod) {
			return true
		}
	}
	return false
}

// allModules reads every module of every application of a release.
func (c *comparer) allModules(p *relup.Package) (map[string]*Module, error) {
	out := map[string]*Module{}
	for _, a := range p.Apps {
		app, err := c.read(p.Root, a.Name, a.Version)
		if err != nil {
			return nil, err
		}
		for n, m := range app.modules {
			out[n] = m
		}
	}
	return out, nil
}

// configChanges notes configuration changes: sys.config, which
// install_release applies, runtime.exs, which the driver merges, and
// Elixir's consolidated protocols, which a hot upgrade does not reload.
func (c *comparer) configChanges() error {
	nw := c.plan.New
	for _, old := range c.plan.Old {
		for _, f := range []struct{ name, note string }{
			{"sys.config", "install_release applies the new sys.config and calls config_change/3 of the applications whose environment changed"},
			{"runtime.exs", "the driver evaluates the new runtime.exs and merges it into sys.config before install_release, " +
				"so runtime-only keys survive"},
		} {
			ob, err := readOptional(filepath.Join(old.Root, "releases", old.Version, f.name))
			if err != nil {
				return err
			}
			nb, err := readOptional(filepath.Join(nw.Root, "releases", nw.Version, f.name))
			if err != nil {
				return err
			}
			if (ob != nil || nb != nil) && !bytes.Equal(ob, nb) {
				c.plan.Notes = appendNew(c.plan.Notes, fmt.Sprintf("%s changed from %s: %s", f.name, old.Version, f.note))
			}
		}
		changed, err := consolidated(old, nw)
		if err != nil {
			return err
		}
		if len(changed) > 0 {
			c.warn(fmt.Sprintf(
				"consolidated protocols changed from %s (%s): a hot upgrade keeps the consolidated protocols the node booted with, "+
					"so new protocol implementations are not dispatched to; ship with a full deploy if the new code needs them",
				old.Version, list(changed)))
		}
	}
	return nil
}

// consolidated returns the protocols whose consolidated module differs
// between two mix releases.
func consolidated(old, nw *relup.Package) ([]string, error) {
	dirs := [2]string{
		filepath.Join(old.Root, "releases", old.Version, "consolidated"),
		filepath.Join(nw.Root, "releases", nw.Version, "consolidated"),
	}
	var sums [2]map[string][16]byte
	for i, dir := range dirs {
		sums[i] = map[string][16]byte{}
		entries, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".beam") || !e.Type().IsRegular() {
				continue
			}
			b, err := readOptional(filepath.Join(dir, e.Name()))
			if err != nil {
				return nil, err
			}
			m, err := ReadBeam(b)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(dir, e.Name()), err)
			}
			sums[i][m.Name] = m.MD5
		}
	}
	var changed []string
	for _, n := range sortedKeys(sums[1]) {
		if o, ok := sums[0][n]; !ok || o != sums[1][n] {
			changed = append(changed, strings.TrimPrefix(n, "Elixir."))
		}
	}
	return changed, nil
}

// display names a module as its source does: Elixir modules without the
// "Elixir." prefix of their atom.
func display(mod string) string { return strings.TrimPrefix(mod, "Elixir.") }

func displayAll(mods []string) string {
	out := make([]string, len(mods))
	for i, m := range mods {
		out[i] = display(m)
	}
	return strings.Join(out, ", ")
}

// warn adds a warning once, however many old releases lead to it.
func (c *comparer) warn(w string) { c.plan.Warnings = appendNew(c.plan.Warnings, w) }
