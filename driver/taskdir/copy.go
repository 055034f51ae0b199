package taskdir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Copy copies the tree at src, a directory the plugin owns and trusts
// (a cached, verified release), into dst, giving everything it creates to
// o. It copies every file rather than hard-linking, so that a task cannot
// change the cache by writing its own copy in place; the kernel's
// copy_file_range keeps that fast.
//
// With merge, names that dst already has are kept and directories are
// merged entry by entry, as release_handler unpacks a release with
// keep_old_files; without it, dst must be empty. It returns the top-most
// paths it created, relative to dst, so that a failed merge can be taken
// back. Skip, when not nil, leaves out a name (relative to src) that it
// returns true for.
func Copy(src string, dst *os.Root, o Owner, merge bool, skip func(string) bool) ([]string, error) {
	var created []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil || rel == "." {
			return err
		}
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if merge {
			if fi, err := dst.Lstat(rel); err == nil {
				if d.IsDir() && fi.IsDir() {
					return nil // merged entry by entry
				}
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil // kept
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := copyEntry(p, rel, info, dst, o); err != nil {
			return err
		}
		if merge {
			created = append(created, rel)
			if d.IsDir() {
				// Everything below is new too; copy it without
				// recording each entry.
				if _, err := copyAll(p, rel, dst, o); err != nil {
					return err
				}
				return fs.SkipDir
			}
		}
		return nil
	})
	return created, err
}

// copyAll copies the contents of the directory src into dst/rel, which
// exists and is empty.
func copyAll(src, rel string, dst *os.Root, o Owner) (int, error) {
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		r, _ := filepath.Rel(src, p)
		if r == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		n++
		return copyEntry(p, filepath.Join(rel, r), info, dst, o)
	})
	return n, err
}

func copyEntry(p, rel string, info fs.FileInfo, dst *os.Root, o Owner) error {
	mode := info.Mode()
	switch {
	case mode.IsDir():
		return Mkdir(dst, rel, mode.Perm()|0o700, o)
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		// A symlink's owner grants nothing, and chowning one by name
		// could reach a file the task swapped in: it stays the plugin's.
		if err := dst.Symlink(target, rel); err != nil {
			return fmt.Errorf("create %s: %w", rel, err)
		}
		return nil
	case mode.IsRegular():
		return copyFile(p, rel, mode.Perm(), dst, o)
	default:
		return fmt.Errorf("%s is not a file, directory or symlink", rel)
	}
}

func copyFile(src, rel string, mode fs.FileMode, dst *os.Root, o Owner) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := dst.OpenFile(rel, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", rel, err)
	}
	_, err = io.Copy(out, in)
	// Explicitly, so the plugin's umask does not narrow the mode.
	if err := errors.Join(err, out.Chmod(mode), o.chown(out), out.Close()); err != nil {
		return fmt.Errorf("copy %s: %w", rel, err)
	}
	return nil
}
