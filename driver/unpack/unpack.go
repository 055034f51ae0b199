// Package unpack extracts release tarballs into a directory without letting
// any entry escape it.
//
// Every file is written through an os.Root, so a path can never be resolved
// outside the target, not even through a symlink that an earlier entry
// created. On top of that, entries are checked by name before anything is
// written, so an archive that tries to escape is rejected with an error that
// names the offending entry rather than silently skipped.
package unpack

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Limits bound what an archive may expand to, against tar bombs.
type Limits struct {
	// MaxBytes is the largest total size of regular files. Zero means
	// DefaultMaxBytes.
	MaxBytes int64
	// MaxEntries is the largest number of entries. Zero means
	// DefaultMaxEntries.
	MaxEntries int
}

const (
	// DefaultMaxBytes is 4 GiB: a release with a large NIF is well under
	// 1 GiB, so anything near this is not a release.
	DefaultMaxBytes = 4 << 30
	// DefaultMaxEntries is far above the few thousand files of a large
	// umbrella release.
	DefaultMaxEntries = 200_000
)

// Error is a rejection of one archive entry, or of the archive as a whole
// when Entry is empty.
type Error struct {
	Entry  string
	Reason string
}

func (e *Error) Error() string {
	if e.Entry == "" {
		return "unpack: " + e.Reason
	}
	return fmt.Sprintf("unpack: entry %q: %s", e.Entry, e.Reason)
}

// File unpacks the tarball at src into dst. See Reader.
func File(src, dst string, lim Limits) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer f.Close()
	return Reader(f, dst, lim)
}

// Reader unpacks a tar archive, gzip-compressed or not, into dst, which must
// exist. It rejects absolute names, names that climb out with "..", links
// that point outside dst, special files, and archives that are truncated,
// corrupt or over the limits.
func Reader(r io.Reader, dst string, lim Limits) error {
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultMaxBytes
	}
	if lim.MaxEntries <= 0 {
		lim.MaxEntries = DefaultMaxEntries
	}

	br := bufio.NewReader(r)
	magic, _ := br.Peek(2)
	var in io.Reader = br
	if bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return &Error{Reason: "corrupt gzip header: " + err.Error()}
		}
		defer zr.Close()
		in = zr
	}

	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("unpack: open target: %w", err)
	}
	defer root.Close()

	u := &unpacker{root: root, lim: lim, dirs: map[string]bool{}}
	tr := tar.NewReader(in)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return archiveError(err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return err
		}
	}
	if u.entries == 0 {
		return &Error{Reason: "archive is empty; build the release tarball again"}
	}
	// Read on past the tar trailer so that a gzip checksum or length error
	// is still reported, but only so far: what follows the trailer may be
	// a decompression bomb.
	if _, err := io.CopyN(io.Discard, in, 1<<20); err != nil && err != io.EOF {
		return archiveError(err)
	}
	return checkLinks(dst, u.links)
}

type unpacker struct {
	root    *os.Root
	lim     Limits
	entries int
	bytes   int64
	links   []string
	dirs    map[string]bool // directories known to exist, to skip MkdirAll
}

// mkdirs makes dir and its parents, once.
func (u *unpacker) mkdirs(dir string) error {
	if dir == "." || u.dirs[dir] {
		return nil
	}
	if err := u.root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for d := dir; d != "." && !u.dirs[d]; d = path.Dir(d) {
		u.dirs[d] = true
	}
	return nil
}

// replaced forgets name as a directory: an entry put something else there.
func (u *unpacker) replaced(name string) {
	for d := range u.dirs {
		if d == name || strings.HasPrefix(d, name+"/") {
			delete(u.dirs, d)
		}
	}
}

func (u *unpacker) entry(hdr *tar.Header, body io.Reader) error {
	u.entries++
	if u.entries > u.lim.MaxEntries {
		return &Error{Reason: fmt.Sprintf("more than %d entries; refusing a possible tar bomb", u.lim.MaxEntries)}
	}
	// archive/tar reads through the data of every entry, whatever its
	// type, so every entry's size counts against the limit.
	if hdr.Size < 0 || u.bytes+hdr.Size > u.lim.MaxBytes {
		return &Error{Entry: hdr.Name, Reason: fmt.Sprintf("unpacked size would exceed %d bytes; refusing a possible tar bomb", u.lim.MaxBytes)}
	}
	if hdr.Typeflag != tar.TypeReg {
		u.bytes += hdr.Size
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return &Error{Entry: hdr.Name, Reason: err.Error()}
	}
	if name == "." {
		return nil
	}
	if err := u.mkdirs(path.Dir(name)); err != nil {
		return &Error{Entry: hdr.Name, Reason: err.Error()}
	}
	// A link may take the place of a directory made earlier; a regular
	// file cannot (removing a directory that holds entries fails, and an
	// empty one leaves later entries failing, never escaping). Only links
	// are rare enough to scan the set for.
	if hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeLink {
		u.replaced(name)
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.mkdirs(name); err != nil {
			return &Error{Entry: hdr.Name, Reason: err.Error()}
		}
		return u.root.Chmod(name, dirMode(hdr.FileInfo().Mode()))
	case tar.TypeReg: // archive/tar reports the old TypeRegA as TypeReg
		return u.file(hdr, name, body)
	case tar.TypeSymlink:
		if err := linkInside(name, hdr.Linkname); err != nil {
			return &Error{Entry: hdr.Name, Reason: err.Error()}
		}
		_ = u.root.Remove(name)
		if err := u.root.Symlink(hdr.Linkname, name); err != nil {
			return &Error{Entry: hdr.Name, Reason: err.Error()}
		}
		u.links = append(u.links, name)
		return nil
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return &Error{Entry: hdr.Name, Reason: "hard link target " + err.Error()}
		}
		_ = u.root.Remove(name)
		if err := u.root.Link(target, name); err != nil {
			return &Error{Entry: hdr.Name, Reason: "hard link: " + err.Error()}
		}
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return &Error{Entry: hdr.Name, Reason: fmt.Sprintf("unsupported entry type %q (device, fifo or similar); a release holds only files, directories and links", hdr.Typeflag)}
	}
}

func (u *unpacker) file(hdr *tar.Header, name string, body io.Reader) error {
	// Remove first so that an earlier symlink of the same name is replaced,
	// never written through.
	_ = u.root.Remove(name)
	f, err := u.root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fileMode(hdr.FileInfo().Mode()))
	if err != nil {
		return &Error{Entry: hdr.Name, Reason: err.Error()}
	}
	n, err := io.Copy(f, io.LimitReader(body, hdr.Size))
	u.bytes += n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return archiveError(err)
	}
	if n != hdr.Size {
		return &Error{Entry: hdr.Name, Reason: "archive is truncated; download it again"}
	}
	return nil
}

// cleanName turns an entry name into a clean relative slash path, or says
// why it cannot be one.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("has an empty name")
	}
	if strings.ContainsRune(name, 0) {
		return "", errors.New("name contains a NUL byte")
	}
	if path.IsAbs(name) || filepath.IsAbs(name) || strings.HasPrefix(name, `\`) {
		return "", errors.New("is an absolute path; build the tarball with paths relative to the release root")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", errors.New(`climbs out of the target directory with ".."; build the tarball with paths relative to the release root`)
		}
	}
	return path.Clean(name), nil
}

// linkInside reports an error if a symlink at name (relative to the root)
// with the given target would resolve outside the root.
func linkInside(name, target string) error {
	if target == "" {
		return errors.New("symlink has an empty target")
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

// checkLinks resolves every symlink once the whole archive is written, which
// catches chains of links that are each harmless alone but escape together,
// dangling ones included: os.Root refuses any resolution that climbs above
// the root, whether or not the final target exists.
func checkLinks(dst string, links []string) error {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer root.Close()
	for _, name := range links {
		_, err := root.Stat(name)
		if err == nil || (errors.Is(err, fs.ErrNotExist) && !escapes(err)) {
			continue
		}
		return &Error{Entry: name, Reason: "symlink chain resolves outside the target directory"}
	}
	return nil
}

// escapes reports whether an os.Root error is about leaving the root.
func escapes(err error) bool { return strings.Contains(err.Error(), "escapes") }

func archiveError(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &Error{Reason: "archive is truncated; download it again"}
	case errors.Is(err, gzip.ErrChecksum), errors.Is(err, gzip.ErrHeader):
		return &Error{Reason: "archive is corrupt (" + err.Error() + "); download it again"}
	case errors.Is(err, tar.ErrHeader):
		return &Error{Reason: "archive is corrupt or not a tarball (" + err.Error() + ")"}
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Reason: "archive is corrupt: " + err.Error()}
}

// fileMode keeps permission bits, and drops setuid, setgid and sticky bits
// that a release never needs.
func fileMode(m fs.FileMode) fs.FileMode {
	return m.Perm() | 0o400
}

func dirMode(m fs.FileMode) fs.FileMode {
	return m.Perm() | 0o700
}
