package appup

import (
	"fmt"
	"sort"
)

// blockers finds changes that generated instructions would make wrongly:
//
//   - a deleted module that ran processes: delete_module purges it with
//     brutal_purge, killing them, and a supervisor that still holds its
//     child spec restarts it into undef;
//   - a changed module that loads a NIF: reloading it runs its on_load,
//     which fails past the point of no return unless the library can be
//     upgraded;
//   - a module that moves to another application: systools either fails
//     (muldef_module) or deletes the new code after loading it.
func (c *comparer) blockers() error {
	for _, ch := range c.changed {
		oa, na := ch.old, ch.nw
		for _, name := range sortedKeys(oa.modules) {
			om := oa.modules[name]
			if _, kept := na.modules[name]; kept {
				continue
			}
			if hasAny(om.Behaviours, statefulBehaviours) || hasAny(om.Behaviours, supervisorBehaviours) {
				c.block(na.name, fmt.Sprintf("%s (%s) is deleted by the upgrade from %s: delete_module purges it with "+
					"brutal_purge, killing its processes, and a supervisor that still holds its child spec restarts "+
					"it into undef", display(name), displayAll(om.Behaviours), ch.rel.Version))
			}
		}
		for _, name := range sortedKeys(na.modules) {
			nm, om := na.modules[name], oa.modules[name]
			if om != nil && om.MD5 != nm.MD5 && (nm.LoadsNIF || om.LoadsNIF) {
				c.block(na.name, fmt.Sprintf("%s loads a NIF and changed: reloading it runs its on_load in the "+
					"running node, which fails past the point of no return unless the library supports upgrades",
					display(name)))
			}
		}
	}
	// A module that belongs to another application in an old release.
	newOwner := map[string]string{}
	for _, a := range c.plan.New.Apps {
		app, err := c.read(c.plan.New.Root, a.Name, a.Version)
		if err != nil {
			return err
		}
		for m := range app.modules {
			newOwner[m] = a.Name
		}
	}
	for _, old := range c.plan.Old {
		var moved []string
		for _, a := range old.Apps {
			app, err := c.read(old.Root, a.Name, a.Version)
			if err != nil {
				return err
			}
			for m := range app.modules {
				if owner, ok := newOwner[m]; ok && owner != a.Name {
					moved = append(moved, fmt.Sprintf("%s moves from %s to %s", display(m), a.Name, owner))
				}
			}
		}
		sort.Strings(moved)
		for _, mv := range moved {
			c.plan.unversioned = appendNew(c.plan.unversioned, fmt.Sprintf("from %s, %s: systools cannot move a module "+
				"between applications (it fails with muldef_module, or deletes the new code after loading it); "+
				"ship with a full deploy", old.Version, mv))
		}
	}
	return nil
}

func (c *comparer) block(app, reason string) {
	for _, b := range c.plan.Blockers {
		if b.App == app && b.Reason == reason {
			return
		}
	}
	c.plan.Blockers = append(c.plan.Blockers, Blocker{App: app, Reason: reason})
}
