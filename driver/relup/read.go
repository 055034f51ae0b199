package relup

import (
	"fmt"
	"strings"

	releasefile "github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

// The files of a release are the job author's, and the driver reads them as
// root: a file is read whole only up to a size far above what a release
// needs, and an error, which becomes a task event, quotes no more than
// release.MaxQuoted bytes of anything read from one.
const (
	// maxStartErl bounds releases/start_erl.data: two short versions.
	maxStartErl = 64 << 10
	// maxTermFile bounds .rel and RELEASES files, a few KiB in a release.
	maxTermFile = 1 << 20
	// maxRelup bounds relup files, which list instructions for every
	// module that changed, for each version upgraded from and downgraded
	// to: a few hundred KiB for an upgrade of thousands of modules. At
	// the limit, eterm.Parse takes about half a second and 70 MB.
	maxRelup = 8 << 20
)

// readFile reads the file name whole if it holds at most limit bytes;
// see release.ReadFile.
func readFile(name string, limit int64) ([]byte, error) { return releasefile.ReadFile(name, limit) }

// isPathElem reports whether s, read from a release, can name a file in
// a directory: the driver's one check of such names, release.ValidName.
func isPathElem(s string) bool { return releasefile.ValidName(s) }

// clip shortens s for quoting; see release.Clip.
func clip(s string) string { return releasefile.Clip(s) }

// verbatim is an argument of an error message that clipArgs leaves whole:
// text the driver composed of clipped parts.
type verbatim string

// clipArgs clips the string arguments of an error message.
func clipArgs(args []any) []any {
	out := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case string:
			a = clip(v)
		case verbatim:
			a = string(v)
		}
		out[i] = a
	}
	return out
}

// maxListed is how many versions or names an error lists.
const maxListed = 8

// listVersions lists vsns for an error: the first maxListed, clipped.
func listClipped(vsns []string) verbatim {
	var b strings.Builder
	for i, v := range vsns {
		if i > 0 {
			b.WriteString(", ")
		}
		if i == maxListed {
			fmt.Fprintf(&b, "and %d more", len(vsns)-i)
			break
		}
		b.WriteString(clip(v))
	}
	return verbatim(b.String())
}
