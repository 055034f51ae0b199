// Package taskdir does the plugin's file operations inside a task's
// directory.
//
// The plugin runs as root, and the task's user can write almost everything
// in its task directory: Nomad makes the task directory, local/ and
// secrets/ mode 0777. Any path below the task directory may therefore be a
// symlink or a hard link that the task planted, and may change between two
// system calls. Only the task directory itself is stable: its parent, the
// allocation directory, is root's alone.
//
// So every operation here goes through an os.Root opened on the task
// directory, which never resolves a path outside it, symlinks included.
// On top of that, files are never written in place: a name is removed and
// created again with O_EXCL, so a planted hard link or symlink is never
// written through, and ownership is set on the open file, never by path.
package taskdir

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path"
	"regexp"
	"strconv"
	"syscall"
)

// Owner is who a created file or directory belongs to. The zero value is
// not valid; use Root for the plugin's own user.
type Owner struct{ UID, GID int }

// Root leaves created files to the user the plugin runs as.
var Root = Owner{UID: -1, GID: -1}

// Lookup returns the owner for a task's user name; "" means Root.
func Lookup(name string) (Owner, error) {
	if name == "" {
		return Root, nil
	}
	if id, ok := DynamicID(name); ok {
		return Owner{UID: id, GID: id}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return Owner{}, fmt.Errorf("task user %q: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return Owner{}, fmt.Errorf("task user %q: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return Owner{}, fmt.Errorf("task user %q: gid %q: %w", name, u.Gid, err)
	}
	return Owner{UID: uid, GID: gid}, nil
}

func (o Owner) chown(f *os.File) error {
	if o.UID < 0 {
		return nil
	}
	return f.Chown(o.UID, o.GID)
}

// Dir is a task directory, open for the plugin's operations.
type Dir struct {
	root *os.Root
	path string
}

// Open opens the task directory at path. The path's parents must be ones
// the task cannot change (Nomad's allocation directory).
func Open(path string) (*Dir, error) {
	r, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("task directory: %w", err)
	}
	return &Dir{root: r, path: path}, nil
}

// Close closes the directory.
func (d *Dir) Close() error { return d.root.Close() }

// Root returns the os.Root of the task directory.
func (d *Dir) Root() *os.Root { return d.root }

// ReadFile reads the file at rel, a slash path relative to the task
// directory, and at most max bytes of it: a longer file is an error.
func (d *Dir) ReadFile(rel string, max int64) ([]byte, error) {
	return ReadFile(d.root, rel, max)
}

// ReadFile reads name in r, failing on a symbolic link anywhere in name,
// on anything but a regular file with one link, or on more than max bytes.
// A symbolic link, even one that stays in r, or a second hard link may
// lead to a file the task could not read itself, which the plugin, root,
// must not read for it.
func ReadFile(r *os.Root, name string, max int64) ([]byte, error) {
	// O_NONBLOCK: a FIFO the task put there must not hang the plugin.
	f, err := OpenFile(r, name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink != 1 {
		return nil, fmt.Errorf("%s has %d links; it must be a file of its own", name, st.Nlink)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, max)
	}
	return b, nil
}

// Fresh replaces whatever is at rel with a new, empty directory made by the
// plugin, and returns a Root opened on it. What was there before, a
// directory the task filled or a link it planted, is moved aside and
// removed without being followed.
func (d *Dir) Fresh(rel string, mode fs.FileMode) (*os.Root, error) {
	if err := d.Remove(rel); err != nil {
		return nil, err
	}
	if err := d.root.MkdirAll(path.Dir(rel), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", path.Dir(rel), err)
	}
	if err := d.root.Mkdir(rel, mode); err != nil {
		return nil, fmt.Errorf("create %s: %w", rel, err)
	}
	r, err := d.root.OpenRoot(rel)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", rel, err)
	}
	// The task may have swapped the name between Mkdir and OpenRoot: what
	// was opened must be the plugin's own directory, still at that name.
	fi, err := r.Stat(".")
	if err == nil {
		li, lerr := d.root.Lstat(rel)
		if lerr != nil || !ownedByPlugin(fi) || li.Mode()&fs.ModeSymlink != 0 || !os.SameFile(fi, li) {
			err = errors.New("replaced while it was being created")
		}
	}
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("open %s: %w", rel, err)
	}
	return r, nil
}

// Remove removes rel and everything below it, without following links:
// it is first renamed to a hidden name in the same directory, so that a
// task cannot put something new in its place while it is being removed.
func (d *Dir) Remove(rel string) error {
	aside := path.Join(path.Dir(rel), ".beam-driver-old-"+random())
	err := d.root.Rename(rel, aside)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", rel, err)
	}
	if err := d.root.RemoveAll(aside); err != nil {
		return fmt.Errorf("remove %s: %w", rel, err)
	}
	return nil
}

func ownedByPlugin(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.IsDir() && int(st.Uid) == os.Geteuid()
}

func random() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WriteFile writes data to a new file name in r, owned by o. Whatever was
// at name is removed first, never written through.
func WriteFile(r *os.Root, name string, data []byte, mode fs.FileMode, o Owner) error {
	if err := r.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace %s: %w", name, err)
	}
	f, err := OpenFile(r, name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Chmod(mode), o.chown(f), f.Close())
	if err != nil {
		_ = r.Remove(name)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// Mkdir makes the directory name in r, owned by o. It fails if anything is
// there already, or if what it then opens at name is not the directory it
// made (one the task renamed into place).
func Mkdir(r *os.Root, name string, mode fs.FileMode, o Owner) error {
	if err := r.Mkdir(name, mode); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	return chownDir(r, name, mode, o, true)
}

// ChownDir gives the directory name in r to o, with mode, through a file
// descriptor: a name the task swapped for a link, or one reached through a
// link, is refused.
func ChownDir(r *os.Root, name string, mode fs.FileMode, o Owner) error {
	return chownDir(r, name, mode, o, false)
}

func chownDir(r *os.Root, name string, mode fs.FileMode, o Owner, fresh bool) error {
	f, err := OpenFile(r, name, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	if fresh {
		if fi, err := f.Stat(); err != nil || !ownedByPlugin(fi) {
			return fmt.Errorf("chown %s: replaced while it was being created", name)
		}
	}
	if err := errors.Join(f.Chmod(mode), o.chown(f)); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	return nil
}

// dynamicUser is the name Nomad gives a dynamic workload user: its uid
// and gid are the number, and it has no passwd entry.
// The number is in its one canonical form, without leading zeros, so that
// two names never give one uid.
var dynamicUser = regexp.MustCompile(`^nomad-([1-9][0-9]{0,9})$`)

// DynamicID returns the uid (and gid) of a dynamic workload user name.
func DynamicID(name string) (int, bool) {
	m := dynamicUser.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	id, err := strconv.ParseUint(m[1], 10, 31)
	if err != nil {
		return 0, false
	}
	return int(id), true
}
