package unpack

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// An os.Root looks every path up one component at a time from the root, so
// each operation on a name costs as many lookups as the name has
// components. Bounding names to maxComponents keeps one operation cheap;
// the budgets below keep all of them together in proportion to the number
// of entries an archive may have, so that no arrangement of entries (a deep
// chain of directories with many entries or links at its bottom) costs more
// than an archive of that many ordinary entries would.
const (
	// lookupsPerEntry is the budget of path components that unpacking
	// may look up, per entry allowed. An entry is looked up two or three
	// times, and the entries of real releases are 5 to 15 components
	// deep: a release at the entry limit and 20 deep on average still
	// fits. With the defaults, 12.8 million lookups, some 20 s of one
	// core at worst.
	lookupsPerEntry = 64
	// resolveStepsPerEntry is the budget of path components that
	// resolving the symlinks of the tree may look up, per entry allowed.
	// A link of a release costs a few dozen (each component of its
	// target, looked up from the root); 20 per entry allows a release
	// with one link in ten entries. With the defaults, 4 million steps,
	// some 6 s of one core at worst.
	resolveStepsPerEntry = 20
	// maxNameBytes bounds the bytes of names that the unpacker keeps in
	// memory, its directories' and its files': 64 MiB allows the entry
	// limit at over 300 bytes a name, where releases use under 100.
	maxNameBytes = 64 << 20
)

const (
	tooDeep      = "the entries are too many and too deep: unpacking them takes over %d path lookups; refusing a possible directory bomb"
	tooManyLinks = "too many link resolutions: over %d path lookups; refusing a possible link bomb"
)

// budget is a number of path lookups left.
type budget struct {
	left, total int64
	what        string // a format that takes total
}

func newBudget(total int64, what string) budget {
	return budget{left: total, total: total, what: what}
}

// spend takes n lookups from the budget, or fails with a *budgetError once
// it is exhausted.
func (b *budget) spend(n int64) error {
	if b.left -= n; b.left < 0 {
		return &budgetError{fmt.Sprintf(b.what, b.total)}
	}
	return nil
}

type budgetError struct{ msg string }

func (e *budgetError) Error() string { return e.msg }

// Errors become task events: a name or a link target is quoted whole only
// when it is short, and a reason never runs long.
const (
	maxQuoted = 160
	maxReason = 400
)

// clip shortens s to about n bytes, keeping its start and, longer, its end
// (the file a path names, the cause at the end of an error).
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	head, tail := n/3, len(s)-(n-n/3)
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return s[:head] + "…" + s[tail:]
}

// q quotes a name or link target for an error, clipped.
func q(s string) string {
	return strconv.Quote(clip(s, maxQuoted))
}
