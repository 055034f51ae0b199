package relup

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/eterm"
)

// The errors of [Package.CheckUpgrade] and [Package.CheckDowngrade] match
// these with [errors.Is]. Each means the release cannot be hot-installed and
// must be deployed as a full release instead; the error's own message says
// why and what to do.
var (
	// ErrOtherRelease means the node runs a release of another name.
	ErrOtherRelease = errors.New("relup: the node runs another release")
	// ErrSameVersion means the node already runs the version.
	ErrSameVersion = errors.New("relup: the node already runs this version")
	// ErrEmulatorChange means the release needs another erts version.
	ErrEmulatorChange = errors.New("relup: the release needs another erts version")
	// ErrNoRelup means the release has no relup file.
	ErrNoRelup = errors.New("relup: the release has no relup")
	// ErrNoPath means the relup has no entry for the node's version.
	ErrNoPath = errors.New("relup: the relup has no path between the versions")
	// ErrRestartsEmulator means the relup entry restarts the emulator.
	ErrRestartsEmulator = errors.New("relup: the relup restarts the emulator")
)

// checkError is a failed check: a message for people and a sentinel error
// for programs.
type checkError struct {
	kind error
	msg  string
}

func (e *checkError) Error() string { return e.msg }
func (e *checkError) Unwrap() error { return e.kind }

// checkErrorf formats a checkError with its string arguments clipped: the
// versions and names of releases come from their files.
func checkErrorf(kind error, format string, args ...any) error {
	return &checkError{kind: kind, msg: fmt.Sprintf(format, clipArgs(args)...)}
}

// CheckUpgrade reports whether release_handler can hot-install p on a node
// that runs version running of the release runningName on erts version
// erts. It returns nil if so, and otherwise an error, matching one of the
// Err variables, that says which check failed and what to do instead.
//
// Like release_handler, it looks up running literally among the versions p's
// relup upgrades from.
func (p *Package) CheckUpgrade(runningName, running, erts string) error {
	switch {
	case runningName != p.Name:
		return checkErrorf(ErrOtherRelease,
			"release %s %s cannot hot-upgrade a node that runs release %s: a hot upgrade keeps the release name; deploy it as a full release",
			p.Name, p.Version, runningName)
	case running == p.Version:
		return checkErrorf(ErrSameVersion,
			"release %s %s is already running on the node: there is nothing to upgrade", p.Name, p.Version)
	case erts != p.ERTS:
		return checkErrorf(ErrEmulatorChange,
			"release %s needs erts %s but the node runs erts %s: an emulator change needs a full deploy",
			p.Version, p.ERTS, erts)
	case p.relup == nil:
		return checkErrorf(ErrNoRelup,
			"release %s has no relup (releases/%s/relup); build one (rebar3 relup, or systools:make_relup in a mix release step) or deploy it as a full release",
			p.Version, p.Version)
	}
	s, ok := findStep(p.relup.up, running)
	if !ok {
		return p.noPath(running, true)
	}
	if r := restart(s.instrs); r != "" {
		return checkErrorf(ErrRestartsEmulator,
			"release %s's relup from %s restarts the emulator (%s): deploy it as a full release", p.Version, running, r)
	}
	return nil
}

// CheckDowngrade reports whether release_handler can take a node that runs
// p back to version to using p's relup. It returns nil if so, and otherwise
// an error, matching one of the Err variables, that says which check failed
// and what to do instead.
//
// release_handler would also accept an entry upgrading from p's version in
// the relup of version to; CheckDowngrade cannot see that release.
func (p *Package) CheckDowngrade(to string) error {
	switch {
	case to == p.Version:
		return checkErrorf(ErrSameVersion,
			"release %s %s is already running on the node: there is nothing to downgrade", p.Name, p.Version)
	case p.relup == nil:
		return checkErrorf(ErrNoRelup,
			"release %s has no relup (releases/%s/relup), so a node cannot go back from it to %s in place; deploy %s as a full release",
			p.Version, p.Version, to, to)
	}
	s, ok := findStep(p.relup.down, to)
	if !ok {
		return p.noPath(to, false)
	}
	if r := restart(s.instrs); r != "" {
		return checkErrorf(ErrRestartsEmulator,
			"release %s's relup to %s restarts the emulator (%s): deploy %s as a full release", p.Version, to, r, to)
	}
	return nil
}

// noPath explains that p's relup has no entry for vsn.
func (p *Package) noPath(vsn string, up bool) error {
	steps, dir, way := p.relup.up, "upgrade path from", "upgrades only from"
	fix := "deploy it as a full release"
	if !up {
		steps, dir, way = p.relup.down, "downgrade path to", "downgrades only to"
		fix = "deploy " + clip(vsn) + " as a full release"
	}
	if pat, ok := patternMatch(steps, vsn); ok {
		// A relup is built for known versions; release_handler never
		// reads its versions as patterns, though appups allow them.
		return checkErrorf(ErrNoPath,
			"release %s has no %s %s: its relup lists %q, which matches %s only as a pattern, and release_handler compares versions literally; rebuild the relup for %s or %s",
			p.Version, dir, vsn, pat, vsn, vsn, verbatim(fix))
	}
	vsns := stepVersions(steps)
	switch {
	case len(vsns) == 0:
		return checkErrorf(ErrNoPath, "release %s has no %s %s: its relup lists no versions; %s",
			p.Version, dir, vsn, verbatim(fix))
	case up && len(vsns) == 1:
		fix += ", or upgrade to " + clip(vsns[0]) + " first"
	case up:
		fix += ", or upgrade to one of those first"
	}
	return checkErrorf(ErrNoPath, "release %s has no %s %s: its relup %s %s; %s",
		p.Version, dir, vsn, way, listClipped(vsns), verbatim(fix))
}

// findStep returns the first step for vsn, as lists:keysearch/3 would.
func findStep(steps []step, vsn string) (step, bool) {
	for _, s := range steps {
		if s.vsn == vsn {
			return s, true
		}
	}
	return step{}, false
}

// patternMatch returns the version of a step that is written as a regular
// expression, such as "0\.1\..*", and matches vsn as one.
func patternMatch(steps []step, vsn string) (string, bool) {
	for _, s := range steps {
		// A version is never this long; neither is a pattern for one.
		if len(s.vsn) > 256 || !strings.ContainsAny(s.vsn, `*+?[]()|^$\{}`) {
			continue
		}
		re, err := regexp.Compile(`^(?:` + s.vsn + `)$`)
		if err == nil && re.MatchString(vsn) {
			return s.vsn, true
		}
	}
	return "", false
}

// restart returns the first instruction that restarts the emulator.
func restart(instrs []eterm.Term) string {
	for _, in := range instrs {
		if a, ok := in.(eterm.Atom); ok && (a == "restart_new_emulator" || a == "restart_emulator") {
			return string(a)
		}
	}
	return ""
}

// stepVersions returns the distinct versions of steps in version order.
func stepVersions(steps []step) []string {
	vsns := make([]string, len(steps))
	for i, s := range steps {
		vsns[i] = s.vsn
	}
	slices.SortFunc(vsns, compareVersions)
	return slices.Compact(vsns)
}

// compareVersions orders versions by their runs of digits as numbers and
// their other runs as text, so that 0.9.0 sorts before 0.10.0.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		var x, y string
		x, a = cutRun(a)
		y, b = cutRun(b)
		if c := compareRuns(x, y); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b) // what is left of one of them is empty
}

// cutRun splits s after its leading run of digits or of other characters.
func cutRun(s string) (run, rest string) {
	digit := isDigit(rune(s[0]))
	i := 1
	for i < len(s) && isDigit(rune(s[i])) == digit {
		i++
	}
	return s[:i], s[i:]
}

func compareRuns(x, y string) int {
	if !isDigit(rune(x[0])) || !isDigit(rune(y[0])) {
		return strings.Compare(x, y)
	}
	tx, ty := strings.TrimLeft(x, "0"), strings.TrimLeft(y, "0")
	if len(tx) != len(ty) {
		return len(tx) - len(ty)
	}
	if c := strings.Compare(tx, ty); c != 0 {
		return c
	}
	// eterm.Equal numbers: fewer leading zeros first, for a total order.
	return len(x) - len(y)
}

func isDigit(r rune) bool { return '0' <= r && r <= '9' }
