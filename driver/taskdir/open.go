package taskdir

import (
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// resolveStrict is how every name in a task-writable place is resolved:
// beneath the directory it is relative to, through no link of any kind.
// os.Root is not enough there: it follows links that stay inside the root,
// even with O_NOFOLLOW, so a link the task planted would still redirect
// root to a file of the task directory that the task must not read
// (private/, a template rendered for root only).
const resolveStrict = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// maxRetries bounds the retries of openat2 on EAGAIN, which it returns
// when a rename elsewhere in the system raced with the lookup.
const maxRetries = 64

// OpenFile opens name, a slash path relative to the directory r, like
// r.OpenFile, but follows no symbolic link in any component of name, not
// even one that stays inside r: a link is an error that says so. The last
// component is not followed either (O_NOFOLLOW is implied).
func OpenFile(r *os.Root, name string, flag int, perm os.FileMode) (*os.File, error) {
	dir, err := r.Open(".")
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	return openat(dir, name, flag, perm)
}

func openat(dir *os.File, name string, flag int, perm os.FileMode) (*os.File, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return nil, &os.PathError{Op: "open", Path: name, Err: errors.New("not a relative path")}
	}
	how := unix.OpenHow{
		Flags:   uint64(flag) | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Mode:    uint64(perm.Perm()),
		Resolve: resolveStrict,
	}
	for range maxRetries {
		fd, err := unix.Openat2(int(dir.Fd()), name, &how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), name), nil
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.ENOSYS):
			return walkOpen(dir, name, flag, perm)
		case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV):
			return nil, &os.PathError{Op: "open", Path: name, Err: ErrLink}
		}
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return nil, &os.PathError{Op: "open", Path: name, Err: errors.New("renames kept racing with the lookup")}
}

// ErrLink is the error of OpenFile for a name that passes through a link
// or leaves its directory.
var ErrLink = errors.New("is or passes through a link, which the driver does not follow in the task directory")

// walkOpen is OpenFile for kernels before Linux 5.6, which have no
// openat2: it opens one component at a time, each with O_NOFOLLOW.
func walkOpen(dir *os.File, name string, flag int, perm os.FileMode) (*os.File, error) {
	parts := strings.Split(name, "/")
	fd, err := unix.Dup(int(dir.Fd()))
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: name, Err: err}
	}
	for i, p := range parts {
		last := i == len(parts)-1
		if p == ".." {
			unix.Close(fd)
			return nil, &os.PathError{Op: "open", Path: name, Err: ErrLink}
		}
		if p == "" || p == "." {
			if !last {
				continue
			}
			p = "."
		}
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if last {
			f = flag | unix.O_NOFOLLOW | unix.O_CLOEXEC
		}
		next, err := unix.Openat(fd, p, f, uint32(perm.Perm()))
		unix.Close(fd)
		if errors.Is(err, unix.ELOOP) || (!last && errors.Is(err, unix.ENOTDIR)) {
			return nil, &os.PathError{Op: "open", Path: name, Err: ErrLink}
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), name), nil
}

// OpenRoot opens the directory name in r as an os.Root, like r.OpenRoot,
// but refuses a name that is, or passes through, a link: a root opened
// through a link the task planted would confine the plugin to whatever
// directory the link names. The directory opened is checked to be the
// one reached without links.
func OpenRoot(r *os.Root, name string) (*os.Root, error) {
	f, err := OpenFile(r, name, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sub, err := r.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	want, err1 := f.Stat()
	got, err2 := sub.Stat(".")
	if err1 != nil || err2 != nil || !os.SameFile(want, got) {
		sub.Close()
		return nil, &os.PathError{Op: "open", Path: name, Err: ErrLink}
	}
	return sub, nil
}
