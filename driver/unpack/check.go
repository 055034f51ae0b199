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
// at its lexical path and nowhere else. Each directory it makes counts as an
// entry, but for dir itself when own is set: the directory entry that is
// being unpacked, already counted.
func (u *unpacker) mkdirs(dir string, own bool) error {
	// The missing part of the chain, deepest first.
	var todo []string
	for d := dir; d != "." && !u.dirs[d]; d = path.Dir(d) {
		todo = append(todo, d)
	}
	for i := len(todo) - 1; i >= 0; i-- {
		d := todo[i]
		// An Lstat, and maybe a Mkdir.
		if err := u.lookups.spend(2 * depth(d)); err != nil {
			return err
		}
		fi, err := u.root.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if !own || d != dir {
				if u.entries++; u.entries > u.lim.MaxEntries {
					return fmt.Errorf("more than %d entries, counting the directories that entries imply; refusing a possible directory bomb", u.lim.MaxEntries)
				}
			}
			if err := u.root.Mkdir(d, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("path %s is a symlink; a tarball never stores entries beneath a symlink", q(d))
		case !fi.IsDir():
			return fmt.Errorf("path %s is not a directory", q(d))
		}
		if err := u.keep(d); err != nil {
			return err
		}
		u.dirs[d] = true
	}
	return nil
}

// wrote records that the entry called entry wrote a regular file (or a hard
// link to one) at name.
func (u *unpacker) wrote(entry, name string) error {
	if err := u.keep(name); err != nil {
		return &Error{Entry: entry, Reason: err.Error()}
	}
	u.files[name] = true
	return nil
}

// keep charges a name that dirs or files is about to hold against
// maxNameBytes.
func (u *unpacker) keep(name string) error {
	if u.names += int64(len(name)); u.names > maxNameBytes {
		return fmt.Errorf("the names of the entries and of their directories add up to more than %d bytes; refusing a possible name bomb", maxNameBytes)
	}
	return nil
}

// replaced forgets what stood at name: an entry is taking its place.
func (u *unpacker) replaced(name string) {
	delete(u.files, name)
	if u.dirs[name] {
		// Forgetting every directory is always safe (mkdirs looks again),
		// and unlike a search for those below name it takes no time: an
		// archive that replaces directory after directory is not a
		// release. What was below name on disk is gone or makes the write
		// fail; so are the files below it.
		u.dirs = map[string]bool{}
	}
}

// linkInside reports an error if a symlink at name (relative to the root)
// with the given target would, read by name alone, resolve outside the
// root. It gives an early, clear error; CheckTree has the last word.
func linkInside(name, target string) error {
	if target == "" {
		return errors.New("symlink has an empty target")
	}
	if err := targetSize(target); err != nil {
		return err
	}
	if path.IsAbs(target) {
		return fmt.Errorf("symlink points to the absolute path %s, outside the target directory", q(target))
	}
	resolved := path.Join(path.Dir(name), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return fmt.Errorf("symlink points to %s, outside the target directory", q(target))
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
//
// The resolution of all the links of the tree together is bounded by the
// budget that Reader gives an archive of DefaultMaxEntries entries.
func CheckTree(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()
	return checkTree(root, DefaultMaxEntries)
}

// targetSize refuses a link target longer than a name may be.
func targetSize(target string) error {
	if len(target) > maxName {
		return fmt.Errorf("symlink target is longer than %d bytes", maxName)
	}
	if n := strings.Count(target, "/") + 1; n > maxComponents {
		return fmt.Errorf("symlink target has more than %d path components; refusing a possible link bomb", maxComponents)
	}
	return nil
}

// maxHops is the kernel's limit on symlinks followed in one resolution.
const maxHops = 40

var (
	errEscape = errors.New("escapes")
	errLoop   = errors.New("loops")
)

// checkTree checks the tree of an archive of at most maxEntries entries.
func checkTree(root *os.Root, maxEntries int) error {
	r := resolver{root: root, steps: newBudget(resolveStepsPerEntry*int64(maxEntries), tooManyLinks)}
	return fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return &Error{Entry: p, Reason: "cannot check the unpacked tree: " + err.Error()}
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if err := r.steps.spend(depth(p)); err != nil {
			return &Error{Entry: p, Reason: err.Error()}
		}
		target, err := root.Readlink(p)
		if err != nil {
			return &Error{Entry: p, Reason: "cannot read symlink: " + err.Error()}
		}
		if err := targetSize(target); err != nil {
			return &Error{Entry: p, Reason: err.Error()}
		}
		r.hops = 0
		if path.IsAbs(target) {
			err = errEscape
		} else {
			_, _, err = r.resolve(components(path.Dir(p)), target, false)
		}
		switch {
		case errors.Is(err, errEscape):
			return &Error{Entry: p, Reason: fmt.Sprintf("symlink to %s resolves outside the target directory", q(target))}
		case errors.Is(err, errLoop):
			return &Error{Entry: p, Reason: fmt.Sprintf("symlink to %s starts a chain of more than %d links or a loop", q(target), maxHops)}
		case errors.As(err, new(*budgetError)):
			return &Error{Entry: p, Reason: err.Error()}
		case err != nil:
			return &Error{Entry: p, Reason: fmt.Sprintf("cannot resolve symlink to %s: %v", q(target), err)}
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
// Every lookup is charged to steps, one step a component: os.Root walks
// each path from the root.
type resolver struct {
	root  *os.Root
	hops  int
	steps budget
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
			if err := r.steps.spend(int64(len(next))); err != nil {
				return nil, false, err
			}
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
				if err := r.steps.spend(int64(len(next))); err != nil {
					return nil, false, err
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
