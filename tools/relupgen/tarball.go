package relupgen

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/unpack"
)

// opened is a release tarball unpacked into a work directory.
type opened struct {
	file string           // the tarball read
	dir  string           // where it is unpacked
	rel  *release.Release // the release in it
}

// open unpacks the tarball src into dir, with the driver's checks against
// hostile archives, and finds the one release in it. file names it in
// errors.
func open(src, file, dir string) (*opened, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := unpack.File(src, dir, unpack.Limits{}); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	r, err := release.Find(dir, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if r.Kind == release.Shipment {
		return nil, fmt.Errorf("%s is a Gleam erlang-shipment, which has no .rel file and cannot take a relup; "+
			"ship it with a full deploy", file)
	}
	return &opened{file: src, dir: dir, rel: r}, nil
}

// prefix returns where the release root sits in the archive: "" for the
// top, or a slash-terminated directory.
func (o *opened) prefix() (string, error) {
	rel, err := filepath.Rel(o.dir, o.rel.Root)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return "", nil
	}
	return filepath.ToSlash(rel) + "/", nil
}

// rewrite copies the gzip-compressed tarball src to dst, replacing or
// adding the files in put (names relative to the archive's top, contents
// as given). Every other entry is copied unchanged. It writes dst through
// a temporary file in its directory and returns dst's sha256.
func rewrite(src, dst string, put map[string][]byte) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	zr, err := gzip.NewReader(bufio.NewReader(in))
	if err != nil {
		return "", fmt.Errorf("%s: %w", src, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sum := sha256.New()
	zw := gzip.NewWriter(io.MultiWriter(tmp, sum))
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(zr)
	done := map[string]bool{}
	var newest time.Time
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%s: %w", src, err)
		}
		if h.ModTime.After(newest) {
			newest = h.ModTime
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if data, ok := put[name]; ok && h.Typeflag == tar.TypeReg {
			h.Size = int64(len(data))
			if err := tw.WriteHeader(h); err != nil {
				return "", err
			}
			if _, err := tw.Write(data); err != nil {
				return "", err
			}
			done[name] = true
			continue
		}
		if err := tw.WriteHeader(h); err != nil {
			return "", err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return "", fmt.Errorf("%s: %w", src, err)
		}
	}
	for _, name := range sortedNames(put) {
		if done[name] {
			continue
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(put[name])), ModTime: newest}
		if err := tw.WriteHeader(h); err != nil {
			return "", err
		}
		if _, err := tw.Write(put[name]); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", err
	}
	return hex.EncodeToString(sum.Sum(nil)), nil
}
