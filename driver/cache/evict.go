package cache

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// evict removes least recently used entries that no task holds, in every
// namespace, until the whole cache (tarballs and unpacked trees) is under
// its size limit. An entry whose lock someone holds is passed by: it is
// being fetched, built or read.
func (c *Cache) evict() {
	if c.maxBytes <= 0 {
		return
	}
	unlock, _, err := lock(filepath.Join(c.root, ".evict.lock"))
	if err != nil {
		return
	}
	defer unlock()
	all, total := c.entries()
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	for _, e := range all {
		if total <= c.maxBytes {
			return
		}
		if held(e.dir, e.sum) {
			continue
		}
		// Take the entry's own lock, so that nobody is reading it.
		u, _, err := tryLock(filepath.Join(e.dir, e.sum+".lock"))
		if err != nil {
			continue
		}
		if held(e.dir, e.sum) { // held while we took the lock
			u()
			continue
		}
		tarball, tree := filepath.Join(e.dir, e.sum+".tar.gz"), filepath.Join(e.dir, e.sum+".d")
		_ = os.Remove(tarball)
		c.trash(tree)
		if !exists(tarball) && !exists(tree) {
			total -= e.size
		}
		u()
	}
}

// entry is a release in the cache: its tarball, its tree, or both.
type entry struct {
	dir, sum string
	size     int64     // tarball and tree
	used     time.Time // the later of the two
}

// entries lists every entry of every namespace, with the cache's total size.
func (c *Cache) entries() ([]*entry, int64) {
	var all []*entry
	var total int64
	for _, dir := range c.entryDirs() {
		bySum := map[string]*entry{}
		get := func(sum string) *entry {
			e := bySum[sum]
			if e == nil {
				e = &entry{dir: dir, sum: sum}
				bySum[sum] = e
				all = append(all, e)
			}
			return e
		}
		names, _ := os.ReadDir(dir)
		for _, n := range names {
			var sum string
			var tree bool
			switch name := n.Name(); {
			case strings.HasSuffix(name, ".tar.gz") && n.Type().IsRegular():
				sum = strings.TrimSuffix(name, ".tar.gz")
			case strings.HasSuffix(name, ".d") && n.IsDir():
				sum, tree = strings.TrimSuffix(name, ".d"), true
			}
			if !hexPattern.MatchString(sum) {
				continue
			}
			fi, err := n.Info()
			if err != nil {
				continue
			}
			e := get(sum)
			size := fi.Size()
			if tree {
				size = treeSize(filepath.Join(dir, n.Name()))
			}
			e.size += size
			total += size
			if fi.ModTime().After(e.used) {
				e.used = fi.ModTime()
			}
		}
	}
	return all, total
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
