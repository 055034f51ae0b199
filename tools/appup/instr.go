package appup

import (
	"slices"
	"sort"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"
)

// Behaviours that make a module a supervisor, and those whose processes
// hold state that code_change may have to convert.
var (
	supervisorBehaviours = []string{"supervisor", "Elixir.Supervisor"}
	statefulBehaviours   = []string{"gen_server", "gen_statem", "gen_event", "gen_fsm", "Elixir.GenServer"}
	// ownerBehaviours are modules that name the children of a supervision
	// tree: supervisors, and Elixir applications that start one in start/2.
	ownerBehaviours = []string{"supervisor", "Elixir.Supervisor", "application", "Elixir.Application"}
)

// codeChange are the exports that make a module's update advanced:
// release_handler suspends its processes and calls the new code's
// code_change (gen_server, gen_statem, gen_event) or system_code_change
// (special processes) with the old state.
var codeChange = []string{"code_change/3", "code_change/4", "system_code_change/4"}

const soft = eterm.Atom("soft_purge")

// instructions returns the appup instructions that take a node running
// application version from to version to: to's modules are the ones
// loaded. Modules to adds come first, then changed modules after the
// modules they call, then the deletions. newer is the later of the two
// versions, whose code decides in both directions: release_handler calls
// code_change in the new code when upgrading, and in the code still
// loaded, the new one, before loading the old when downgrading.
func instructions(from, to, newer *app) []eterm.Term {
	var load []string // added or changed, by name
	for _, m := range sortedKeys(to.modules) {
		if old, ok := from.modules[m]; !ok || old.MD5 != to.modules[m].MD5 {
			load = append(load, m)
		}
	}
	deciding := map[string]*Module{}
	for _, m := range load {
		deciding[m] = to.modules[m]
		if nm, ok := newer.modules[m]; ok {
			deciding[m] = nm
		}
	}
	var out []eterm.Term
	for _, m := range dependencyOrder(load, deciding) {
		mod := deciding[m]
		deps := eterm.List{}
		for _, c := range mod.Calls {
			if slices.Contains(load, c) {
				deps = append(deps, eterm.Atom(c))
			}
		}
		name := eterm.Atom(m)
		switch _, existed := from.modules[m]; {
		case !existed:
			out = append(out, eterm.Tuple{eterm.Atom("add_module"), name})
		case hasAny(mod.Behaviours, supervisorBehaviours):
			out = append(out, eterm.Tuple{eterm.Atom("update"), name, eterm.Atom("static"), eterm.Atom("default"),
				advanced(), soft, soft, deps})
		case hasAny(exportList(mod), codeChange):
			out = append(out, eterm.Tuple{eterm.Atom("update"), name, advanced(), soft, soft, deps})
		default:
			out = append(out, eterm.Tuple{eterm.Atom("load_module"), name, soft, soft, deps})
		}
	}
	for _, m := range sortedKeys(from.modules) {
		if _, ok := to.modules[m]; !ok {
			out = append(out, eterm.Tuple{eterm.Atom("delete_module"), eterm.Atom(m)})
		}
	}
	return out
}

func advanced() eterm.Term { return eterm.Tuple{eterm.Atom("advanced"), eterm.List{}} }

// dependencyOrder sorts names so that each comes after the names it calls,
// by name where calls do not decide; cycles are broken at the smallest
// name.
func dependencyOrder(names []string, mods map[string]*Module) []string {
	in := map[string]bool{}
	for _, n := range names {
		in[n] = true
	}
	waits := map[string]int{}        // how many of its callees are unplaced
	callers := map[string][]string{} // callee -> callers within names
	for _, n := range names {
		for _, c := range mods[n].Calls {
			if in[c] && c != n {
				waits[n]++
				callers[c] = append(callers[c], n)
			}
		}
	}
	placed := map[string]bool{}
	var out []string
	for len(out) < len(names) {
		var ready []string
		for _, n := range names {
			if !placed[n] && waits[n] == 0 {
				ready = append(ready, n)
			}
		}
		if len(ready) == 0 { // a cycle: take the smallest unplaced name
			for _, n := range names {
				if !placed[n] {
					ready = []string{n}
					break
				}
			}
		}
		sort.Strings(ready)
		n := ready[0]
		placed[n] = true
		out = append(out, n)
		for _, caller := range callers[n] {
			waits[caller]--
		}
	}
	return out
}

func exportList(m *Module) []string {
	var out []string
	for e := range m.Exports {
		out = append(out, e)
	}
	return out
}

func hasAny(have, want []string) bool {
	for _, w := range want {
		if slices.Contains(have, w) {
			return true
		}
	}
	return false
}
