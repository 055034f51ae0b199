package driver

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// materialize builds a task's copy of an unpacked release from the node's
// cached tree: hard links for the bulk of it (erts, lib/, ebin/), which the
// VM only reads, and real copies for the small files a node or the driver
// may rewrite in place (bin/, releases/, files at the top). It is much
// faster than unpacking again. It fails (and the caller unpacks instead)
// when the two directories are on different filesystems.
func materialize(tree, dst string) error {
	return filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(out, info.Mode().Perm()|0o700)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		case shared(rel):
			return os.Link(p, out)
		default:
			return copyFile(p, out, info.Mode().Perm())
		}
	})
}

// shared reports whether a file of a release is never written in place, so
// tasks can share it: erts and lib/ (OTP applications), and the ebin/ of a
// shipment's packages. bin/ and releases/ are the node's and the driver's
// to rewrite (scripts, RELEASES, start_erl.data on hot upgrades).
func shared(rel string) bool {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	dirs := parts[:len(parts)-1]
	for _, p := range dirs {
		switch {
		case p == "releases" || p == "bin":
			return false
		case p == "lib" || strings.HasPrefix(p, "erts-"):
			return true
		}
	}
	return len(dirs) > 0 && dirs[len(dirs)-1] == "ebin"
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
	return out.Close()
}
