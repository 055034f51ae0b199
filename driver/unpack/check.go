package unpack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// mkdirs makes sure that dir and each of its parents is a real directory,
// making those that are missing. It refuses a path that holds a symlink or
// anything else that is not a directory, so that an entry below dir lands
// at its lexical path and nowhere else.
func (u *unpacker) mkdirs(dir string) error {
	// The missing part of the chain, deepest first.
	var todo []string
	for d := dir; d != "." && !u.dirs[d]; d = path.Dir(d) {
		todo = append(todo, d)
	}
	for i := len(todo) - 1; i >= 0; i-- {
		d := todo[i]
		fi, err := u.root.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := u.root.Mkdir(d, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("path %q is a symlink; a tarball never stores entries beneath a symlink", d)
		case !fi.IsDir():
			return fmt.Errorf("path %q is not a directory", d)
		}
		u.dirs[d] = true
	}
	return nil
}

// replaced forgets what stood at name: an entry is taking its place.
func (u *unpacker) replaced(name string) {
	delete(u.files, name)
	if !u.dirs[name] {
		return // dirs is closed under parents: nothing below name is in it
	}
	for d := range u.dirs {
		if d == name || strings.HasPrefix(d, name+"/") {
			delete(u.dirs, d)
		}
	}
}

// linkInside reports an error if a symlink at name (relative to the root)
// with the given target would, read by name alone, resolve outside the
// root. It gives an early, clear error; CheckTree has the last word.
func linkInside(name, target string) error {
	if target == "" {
		return errors.New("symlink has an empty target")
	}
	if len(target) > maxName {
		return fmt.Errorf("symlink target is longer than %d bytes", maxName)
	}
	if path.IsAbs(target) {
		return fmt.Errorf("symlink points to the absolute path %q, outside the target directory", target)
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("symlink points to %q, outside the target directory", target)
	}
	return nil
}

// CheckTree walks the tree at dir without following links and checks every
// symlink from where it stands: its target must be relative and, resolved
// component by component through the tree (following the links it meets),
// never climb above dir. A dangling link passes if it stays inside: past a
// component that does not exist, the rest of its target is judged by name.
// Reader runs this on every tree it unpacks; it fails with an *Error that
// names the link and its target.
func CheckTree(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()
	return checkTree(root)
}

// maxHops is the kernel's limit on symlinks followed in one resolution.
const maxHops = 40

var (
	errEscape = errors.New("escapes")
	errLoop   = errors.New("loops")
)

func checkTree(root *os.Root) error {
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return &Error{Entry: p, Reason: "cannot check the unpacked tree: " + err.Error()}
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		target, err := root.Readlink(p)
		if err != nil {
			return &Error{Entry: p, Reason: "cannot read symlink: " + err.Error()}
		}
		r := resolver{root: root}
		if path.IsAbs(target) {
			err = errEscape
		} else {
			_, _, err = r.resolve(components(path.Dir(p)), target, false)
		}
		switch {
		case errors.Is(err, errEscape):
			return &Error{Entry: p, Reason: fmt.Sprintf("symlink to %q resolves outside the target directory", target)}
		case errors.Is(err, errLoop):
			return &Error{Entry: p, Reason: fmt.Sprintf("symlink to %q starts a chain of more than %d links or a loop", target, maxHops)}
		case err != nil:
			return &Error{Entry: p, Reason: fmt.Sprintf("cannot resolve symlink to %q: %v", target, err)}
		}
		return nil
	})
}

func components(dir string) []string {
	if dir == "." {
		return nil
	}
	return strings.Split(dir, "/")
}

// resolver follows symlinks within a root the way the kernel would, but
// refuses any step above the root instead of trusting anything to stop it.
type resolver struct {
	root *os.Root
	hops int
}

// resolve follows target from dir, the components of a directory below the
// root, and returns where it ends. Once lexical is set (a component did not
// exist, or was not a directory), the rest is resolved by name alone, as if
// the missing parts were plain directories: that judges a dangling link by
// what it would reach were its target created.
func (r *resolver) resolve(dir []string, target string, lexical bool) ([]string, bool, error) {
	if target == "" {
		return nil, false, errors.New("empty symlink target")
	}
	if path.IsAbs(target) {
		return nil, false, errEscape
	}
	cur := dir[:len(dir):len(dir)] // appends copy, never write into dir
	for _, part := range strings.Split(target, "/") {
		switch {
		case part == "" || part == ".":
		case part == "..":
			if len(cur) == 0 {
				return nil, false, errEscape
			}
			cur = cur[: len(cur)-1 : len(cur)-1]
		case lexical:
			cur = append(cur, part)
		default:
			next := append(cur, part)
			name := path.Join(next...)
			fi, err := r.root.Lstat(name)
			switch {
			case err != nil:
				lexical = true
				cur = next
			case fi.Mode()&fs.ModeSymlink != 0:
				if r.hops++; r.hops > maxHops {
					return nil, false, errLoop
				}
				t, err := r.root.Readlink(name)
				if err != nil {
					return nil, false, err
				}
				if cur, lexical, err = r.resolve(cur, t, false); err != nil {
					return nil, false, err
				}
			default:
				cur = next
				lexical = !fi.IsDir()
			}
		}
		cur = cur[:len(cur):len(cur)]
	}
	return cur, lexical, nil
}
