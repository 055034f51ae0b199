package driver

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/cache"
)

// materialize builds a task's copy of an unpacked release from the node's
// cached tree. It copies every file (the kernel's copy_file_range makes
// that several times faster than unpacking the tarball again) rather than
// hard-linking: a task that runs as root could otherwise rewrite a shared
// file in place and change the cache and every other task's release.
func materialize(tree, dst string) error {
	return filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		if rel == cache.CompleteMarker {
			return nil
		}
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(out, 0o700); err != nil {
				return err
			}
			// Explicitly, so the plugin's umask does not narrow it.
			return os.Chmod(out, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		default:
			return copyFile(p, out, info.Mode().Perm())
		}
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", filepath.Base(src), err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode) // the umask applies at creation
}

// mergeTree moves into dst every file and directory of src that dst does not
// have, and leaves what dst has alone: how a hot-upgrade package joins a
// live release root, like release_handler's own unpack with keep_old_files.
// src and dst must be on one file system. It returns what it moved.
func mergeTree(src, dst string) ([]string, error) {
	var moved []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		out := filepath.Join(dst, rel)
		if _, err := os.Lstat(out); err == nil {
			return nil // kept; a directory is merged entry by entry
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Rename(p, out); err != nil {
			return err
		}
		moved = append(moved, out)
		if d.IsDir() {
			return fs.SkipDir
		}
		return nil
	})
	return moved, err
}
