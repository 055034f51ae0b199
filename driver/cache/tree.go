package cache

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CompleteMarker is the file Tree writes last into a tree it built. It
// holds the tree's size in bytes, in decimal, which eviction counts.
const CompleteMarker = ".beam-driver-complete"

// Tree returns a directory derived from the verified tarball sum (its
// unpacked contents), building it once with build under the entry's lock.
// The tarball must be in the cache (Get first). Trees count toward the size
// limit and are kept and evicted with their tarball; building one evicts
// others to make room.
//
// Tree refuses to finish a tree in which build left an entry named
// CompleteMarker, and writes the marker without following or truncating
// anything.
func (c *Cache) Tree(sum string, build func(dir string) error) (string, error) {
	sum = strings.ToLower(sum)
	if !hexPattern.MatchString(sum) {
		return "", fmt.Errorf("cache: %q is not a sha256", sum)
	}
	unlock, _, err := lock(filepath.Join(c.dir, sum+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	dir := filepath.Join(c.dir, sum+".d")
	if complete(dir) {
		now := time.Now()
		_ = os.Chtimes(dir, now, now) // most recently used
		return dir, nil
	}
	c.trash(dir) // incomplete: a crash while building or removing it
	tmp, err := os.MkdirTemp(c.dir, sum+".d.*.part")
	if err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	if err := build(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := finish(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("cache: %w", err)
	}
	// Still under the entry's lock, so eviction passes this entry by.
	c.evict()
	return dir, nil
}

// HasTree returns the tree of sum if it is complete.
func (c *Cache) HasTree(sum string) (string, bool) {
	dir := filepath.Join(c.dir, strings.ToLower(sum)+".d")
	return dir, complete(dir)
}

// complete reports whether the tree at dir has its marker, a regular file.
func complete(dir string) bool {
	fi, err := os.Lstat(filepath.Join(dir, CompleteMarker))
	return err == nil && fi.Mode().IsRegular()
}

// finish measures the tree built in tmp and writes its marker, holding the
// size, through an os.Root and with O_EXCL: a link planted under the
// marker's name is never followed or truncated.
func finish(tmp string) error {
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer root.Close()
	size, marker, err := measure(root)
	if err != nil {
		return fmt.Errorf("cache: measure the built tree: %w", err)
	}
	if marker {
		return fmt.Errorf("cache: the built tree holds an entry named %q, which the cache reserves", CompleteMarker)
	}
	f, err := root.OpenFile(CompleteMarker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	_, err = f.WriteString(strconv.FormatInt(size, 10))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// measure sums the sizes of the regular files under root, following no
// link, and reports whether an entry anywhere is named like the marker.
func measure(root *os.Root) (size int64, marker bool, err error) {
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == CompleteMarker {
			marker = true
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			size += fi.Size()
		}
		return nil
	})
	return size, marker, err
}

// treeSize is the size of the tree at dir: what its marker says, or, for a
// tree without a readable one (incomplete, or built by an older version),
// what it measures.
func treeSize(dir string) int64 {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return 0
	}
	defer root.Close()
	if fi, err := root.Lstat(CompleteMarker); err == nil && fi.Mode().IsRegular() && fi.Size() <= 20 {
		if b, err := root.ReadFile(CompleteMarker); err == nil {
			if n, err := strconv.ParseInt(string(b), 10, 64); err == nil && n >= 0 {
				return n
			}
		}
	}
	n, _, _ := measure(root)
	return n
}

// trash removes a directory by first renaming it out of the way, so that a
// crash halfway leaves nothing that looks like a cached tree.
func (c *Cache) trash(dir string) {
	if _, err := os.Lstat(dir); err != nil {
		return
	}
	t := fmt.Sprintf("%s.trash.%d", dir, time.Now().UnixNano())
	if os.Rename(dir, t) == nil {
		_ = os.RemoveAll(t)
	}
}
