package fetch

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// fileSource reads file:// paths on the client, only beneath roots. The
// plugin runs as root: without the roots a job could read any file on the
// client, or learn its sha256 from a checksum mismatch.
type fileSource struct{ roots []string }

// open opens the regular file at u through an os.Root on the file root
// that holds it, so that no symbolic link can lead outside that root.
func (s fileSource) open(u *url.URL) (*os.File, int64, error) {
	src := Redact(u.String())
	if len(s.roots) == 0 {
		return nil, 0, permanent("%s is a local file, and file sources are off: the plugin config sets no file_roots; "+
			"list the directory that holds releases in file_roots in the plugin config, or publish the release to S3, GCS or HTTP", src)
	}
	if u.Opaque != "" || (u.Host != "" && u.Host != "localhost") || !strings.HasPrefix(u.Path, "/") {
		return nil, 0, permanent("%s: a file source must be an absolute path, such as file:///srv/releases/app.tar.gz", src)
	}
	if slices.Contains(strings.Split(u.Path, "/"), "..") {
		return nil, 0, permanent("%s: a file source must not contain \"..\"; give the path inside file_roots (%s) directly", src, strings.Join(s.roots, ", "))
	}
	root, rel, ok := s.under(filepath.Clean(u.Path))
	if !ok {
		return nil, 0, permanent("%s is not under any of file_roots (%s) in the plugin config; "+
			"put the release there or add its directory to file_roots", src, strings.Join(s.roots, ", "))
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, 0, permanent("file_roots entry %s cannot be opened: %v", root, err)
	}
	defer r.Close()
	// O_NONBLOCK: opening a FIFO must not block; it is refused below.
	f, err := r.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, &PermanentError{&NotFound{Source: src}}
	}
	if err != nil {
		return nil, 0, permanent("%s cannot be opened inside file_roots entry %s (%v); symbolic links must not lead out of file_roots", src, root, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, permanent("%s is not a regular file", src)
	}
	return f, fi.Size(), nil
}

// under returns the first root that holds path, and path relative to it.
func (s fileSource) under(path string) (root, rel string, ok bool) {
	for _, root := range s.roots {
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			continue
		}
		return root, rel, true
	}
	return "", "", false
}

func (s fileSource) size(_ context.Context, u *url.URL) (int64, error) {
	f, n, err := s.open(u)
	if err != nil {
		return 0, err
	}
	f.Close()
	return n, nil
}

func (s fileSource) download(ctx context.Context, u *url.URL, out *sink) (int64, error) {
	f, n, err := s.open(u)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if n > out.lim.max {
		return 0, out.lim.over(n)
	}
	return copyTo(ctx, out, f)
}
