package relup

import (
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// The files of a release are the job author's, and the driver reads them as
// root: a file is read whole only up to a size far above what a release
// needs, and an error, which becomes a task event, quotes no more than
// maxQuoted bytes of anything read from one.
const (
	// maxStartErl bounds releases/start_erl.data: two short versions.
	maxStartErl = 64 << 10
	// maxTermFile bounds .rel and RELEASES files, a few KiB in a release.
	maxTermFile = 1 << 20
	// maxRelup bounds relup files, which list instructions for every
	// module that changed, for each version upgraded from and downgraded
	// to: a few hundred KiB for an upgrade of thousands of modules. At
	// the limit, Parse takes about half a second and 70 MB.
	maxRelup = 8 << 20
	// maxQuoted is how many bytes of a file's content an error quotes.
	maxQuoted = 64
)

// readFile reads the file name whole if it holds at most limit bytes. A
// larger file is an error that names it and the limit, never its content.
// Errors from opening it are os.ReadFile's, so a missing file matches
// fs.ErrNotExist.
func readFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tooLarge := func() error {
		size := fmt.Sprintf("%d KiB", limit>>10)
		if limit >= 1<<20 {
			size = fmt.Sprintf("%d MiB", limit>>20)
		}
		return fmt.Errorf("%s is larger than %s, the most the driver reads of such a file; is it really part of the release?", name, size)
	}
	// The size the file claims saves reading it; what is read decides.
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > limit {
		return nil, tooLarge()
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: name, Err: err}
	}
	if int64(len(data)) > limit {
		return nil, tooLarge()
	}
	return data, nil
}

// clip returns s, or its first maxQuoted bytes (whole runes) and an
// ellipsis: for quoting, with %q or %s, something read from a file.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	n := maxQuoted
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

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
