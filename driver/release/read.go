package release

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// The files of a release are the job author's, and the driver reads them as
// root: it reads a file whole only up to a size far above what a release
// needs, and never quotes more than a few bytes of one in an error, which
// becomes a task event.
const (
	// MaxStartErlSize bounds releases/start_erl.data, which holds two
	// short versions.
	MaxStartErlSize = 64 << 10
	// MaxFileSize bounds the other files that the driver reads whole:
	// term files (.rel, .app, RELEASES), vm.args and scripts. The largest
	// of a real release, relx's start script, is some 40 KiB.
	MaxFileSize = 1 << 20
	// MaxQuoted is how many bytes of a file's content an error quotes at
	// most; see Clip.
	MaxQuoted = 64
)

// ErrTooLarge matches, with errors.Is, the error of ReadFile for a file
// over its limit.
var ErrTooLarge = errors.New("release: file too large")

type tooLargeError struct {
	name  string
	limit int64
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("%s is larger than %s, the most the driver reads of such a file; "+
		"is it really part of the release?", e.name, Size(e.limit))
}

func (e *tooLargeError) Is(target error) bool { return target == ErrTooLarge }

// ReadFile reads the file name whole, like os.ReadFile, if it holds at most
// limit bytes. A larger file is an error that matches ErrTooLarge and names
// the file and the limit, never its content. Errors from opening the file
// are os.ReadFile's: a missing file matches fs.ErrNotExist.
func ReadFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, name, limit)
}

// ReadIn reads the file name, a slash path relative to the directory root,
// like ReadFile. The path is resolved through an os.Root on root: neither
// ".." nor a link may lead out of it. Use it for every file of a release
// whose path holds a name read from the release (a version, a release
// name), after checking that name with ValidName.
func ReadIn(root, name string, limit int64) ([]byte, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return readFS(r.FS(), name, filepath.Join(root, filepath.FromSlash(name)), limit)
}

// StatIn is os.Stat of the slash path name beneath root, resolved as
// ReadIn resolves it.
func StatIn(root, name string) (fs.FileInfo, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Stat(name)
}

// readFS reads name from fsys like ReadFile; full is the path errors give.
func readFS(fsys fs.FS, name, full string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			pe.Path = full
		}
		return nil, err
	}
	defer f.Close()
	return readLimited(f, full, limit)
}

// readLimited reads the open file f whole if it holds at most limit bytes.
// The size the file claims saves reading it; what is read decides.
func readLimited(f fs.File, full string, limit int64) ([]byte, error) {
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > limit {
		return nil, &tooLargeError{full, limit}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: full, Err: err}
	}
	if int64(len(data)) > limit {
		return nil, &tooLargeError{full, limit}
	}
	return data, nil
}

// Clip returns s, or its first MaxQuoted bytes (whole runes) and an
// ellipsis: for quoting the content of a file, with %q, in an error.
func Clip(s string) string {
	if len(s) <= MaxQuoted {
		return s
	}
	n := MaxQuoted
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Size formats a limit in bytes the way the errors about it do: 64 KiB,
// 1 MiB.
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
