// Package unpack extracts release tarballs into a directory without letting
// any entry escape it.
//
// The rules, each simple enough to check by reading the code:
//
//   - Every write goes through an os.Root on the target.
//   - An entry is only ever created at its lexical path: an entry whose
//     parent path holds a symlink, or anything but a directory, when it is
//     written is refused (tar never stores files beneath a symlinked
//     directory, so well-formed releases are unaffected).
//   - A hard link may only point to a regular file that this archive wrote
//     earlier and that still stands at that name, never to a symlink, a
//     directory or anything the archive did not write.
//   - Names that the driver reserves for itself (any path component
//     starting with ".beam-driver") are refused.
//   - Once the whole archive is written, every symlink in the tree is
//     resolved from where it finally stands, component by component
//     without trusting the kernel to stop at the root, and refused if it is
//     absolute or climbs above the target, dangling or not.
//   - The work is bounded as well as the size: names and link targets have
//     at most maxComponents components, directories that entries imply
//     count as entries, and every lookup through the root is charged,
//     component by component, against a budget that grows with
//     Limits.MaxEntries (see budget.go).
//
// An archive that breaks a rule is rejected with an *Error that names the
// offending entry (and link target), never quoting any file's content.
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
	// MaxEntries is the largest number of entries, counting the
	// directories that entries imply without an entry of their own. Zero
	// means DefaultMaxEntries. It also sets the work budgets of budget.go.
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
		return "unpack: " + clip(e.Reason, maxReason)
	}
	return fmt.Sprintf("unpack: entry %s: %s", q(e.Entry), clip(e.Reason, maxReason))
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
// exist and should be empty: the whole of dst is checked once the archive is
// written. It rejects absolute names, names that climb out with "..",
// entries beneath a symlink, hard links to anything but a regular file of
// the same archive, names reserved by the driver, symlinks that resolve
// outside dst, special files, and archives that are truncated, corrupt or
// over the limits. On error, Reader empties dst, so that nothing of a
// rejected archive (a link that escapes, say) is left behind.
func Reader(r io.Reader, dst string, lim Limits) (err error) {
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
	defer func() {
		if err != nil {
			empty(root)
		}
	}()

	u := &unpacker{root: root, lim: lim, dirs: map[string]bool{}, files: map[string]bool{},
		lookups: newBudget(lookupsPerEntry*int64(lim.MaxEntries), tooDeep)}
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
	return checkTree(root, lim.MaxEntries)
}

type unpacker struct {
	root    *os.Root
	lim     Limits
	entries int
	bytes   int64
	// dirs holds names known to be real directories (not symlinks) that
	// no later entry replaced. It is closed under parents: a name is only
	// in it with all its ancestors.
	dirs map[string]bool
	// files holds names where this archive wrote a regular file (or a hard
	// link to one) that no later entry replaced: the only valid hard link
	// targets.
	files map[string]bool
	// names is how many bytes of names dirs and files took in all, for
	// maxNameBytes.
	names int64
	// lookups is what is left of the budget of path components looked
	// up through root.
	lookups budget
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
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return &Error{Entry: hdr.Name, Reason: err.Error()}
	}
	if name == "." {
		return nil
	}
	if err := reserved(name); err != nil {
		return &Error{Entry: hdr.Name, Reason: err.Error()}
	}
	// Rule: the entry goes at its lexical path, below real directories.
	if err := u.mkdirs(path.Dir(name), false); err != nil {
		return &Error{Entry: hdr.Name, Reason: err.Error()}
	}
	// Every case below looks name up at most three times; hard links and
	// new directories pay for their other lookups themselves.
	if err := u.lookups.spend(3 * depth(name)); err != nil {
		return &Error{Entry: hdr.Name, Reason: err.Error()}
	}
	if hdr.Typeflag != tar.TypeDir {
		// Whatever stood at name is replaced (or the write fails, as
		// removing a directory that holds entries does).
		u.replaced(name)
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.mkdirs(name, true); err != nil {
			return &Error{Entry: hdr.Name, Reason: err.Error()}
		}
		if err := u.root.Chmod(name, dirMode(hdr.FileInfo().Mode())); err != nil {
			return &Error{Entry: hdr.Name, Reason: err.Error()}
		}
		return nil
	case tar.TypeReg: // archive/tar reports the old TypeRegA as TypeReg
		if err := u.file(hdr, name, body); err != nil {
			return err
		}
		return u.wrote(hdr.Name, name)
	case tar.TypeSymlink:
		if err := linkInside(name, hdr.Linkname); err != nil {
			return &Error{Entry: hdr.Name, Reason: err.Error()}
		}
		_ = u.root.Remove(name)
		if err := u.root.Symlink(hdr.Linkname, name); err != nil {
			return &Error{Entry: hdr.Name, Reason: err.Error()}
		}
		return nil
	case tar.TypeLink:
		if err := u.hardLink(name, hdr.Linkname); err != nil {
			return &Error{Entry: hdr.Name, Reason: err.Error()}
		}
		return u.wrote(hdr.Name, name)
	default:
		return &Error{Entry: hdr.Name, Reason: fmt.Sprintf("unsupported entry type %q (device, fifo or similar); a release holds only files, directories and links", hdr.Typeflag)}
	}
}

func (u *unpacker) file(hdr *tar.Header, name string, body io.Reader) error {
	// Remove first so that an earlier symlink or hard link of the same
	// name is replaced, never written through.
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

// hardLink links name to target, which must be a regular file that this
// archive wrote and that still stands, at its lexical path, at that name.
func (u *unpacker) hardLink(name, linkname string) error {
	target, err := cleanName(linkname)
	if err != nil {
		return errors.New("hard link target " + err.Error())
	}
	if !u.files[target] {
		return fmt.Errorf("hard link to %s, which is not a regular file written earlier in this archive", q(linkname))
	}
	// Belt and braces: the set says so, and so must the file system.
	if err := u.lookups.spend(depth(target)); err != nil {
		return err
	}
	if err := u.mkdirs(path.Dir(target), false); err != nil {
		return fmt.Errorf("hard link to %s: %v", q(linkname), err)
	}
	fi, err := u.root.Lstat(target)
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("hard link to %s, which is not a regular file written earlier in this archive", q(linkname))
	}
	// One size rule for the unpack, the cache's accounting and every copy
	// of the tree: a name costs the size of its file, however many names
	// the file has. A hard link is free in a tarball, but each task gets a
	// copy of the tree with every link a file of its own, and the cache
	// counts each name: charged at nothing, one large file and thousands
	// of links to it would pass the limit and fill the disk.
	if u.bytes+fi.Size() > u.lim.MaxBytes {
		return fmt.Errorf("unpacked size would exceed %d bytes, counting each hard link as a copy of %s, as a task's copy of the release is; "+
			"refusing a possible hard-link bomb", u.lim.MaxBytes, q(linkname))
	}
	u.bytes += fi.Size()
	_ = u.root.Remove(name)
	if err := u.root.Link(target, name); err != nil {
		return errors.New("hard link: " + err.Error())
	}
	return nil
}

// maxName bounds entry names and link targets: the kernel's PATH_MAX, far
// above any release's.
const maxName = 4096

// maxComponents bounds the components of entry names and link targets, and
// so the depth of the tree: every lookup through an os.Root walks the path
// one component at a time. The deepest files of real releases (Phoenix's
// priv/static trees, a node_modules copied into priv) are a few dozen deep
// at most.
const maxComponents = 128

// depth is the number of components of a clean relative name.
func depth(name string) int64 {
	return int64(strings.Count(name, "/")) + 1
}

// cleanName turns an entry name into a clean relative slash path, or says
// why it cannot be one.
func cleanName(name string) (string, error) {
	if name == "" {
		return "", errors.New("has an empty name")
	}
	if len(name) > maxName {
		return "", fmt.Errorf("name is longer than %d bytes", maxName)
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
	clean := path.Clean(name)
	if depth(clean) > maxComponents {
		return "", fmt.Errorf("name has more than %d path components; refusing a possible directory bomb", maxComponents)
	}
	return clean, nil
}

// ReservedPrefix starts every name that the driver keeps for itself in an
// unpacked tree (the cache's completion marker, temporary files). No entry
// of an archive may have a path component that starts with it.
const ReservedPrefix = ".beam-driver"

// reserved refuses a clean name with a component the driver reserves.
func reserved(name string) error {
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, ReservedPrefix) {
			return fmt.Errorf("name %s is reserved for the driver's own files", q(part))
		}
	}
	return nil
}

// empty removes everything in root, following no link.
func empty(root *os.Root) {
	names, _ := fs.ReadDir(root.FS(), ".")
	for _, n := range names {
		_ = root.RemoveAll(n.Name())
	}
}

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
