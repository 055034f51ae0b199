// Package publish puts a release tarball where the beam driver fetches it:
// an S3 bucket, a GCS bucket or a directory, as <dest>/<name>-<vsn>.tar.gz
// with a <tarball>.sha256 next to it in sha256sum format, the layout
// DeployEx users know ({bucket}/dist/{app}/{app}-{version}.tar.gz).
package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/unpack"
)

// Store is where tarballs go.
type Store interface {
	// Exists reports whether an object is there.
	Exists(ctx context.Context, key string) (bool, error)
	// Put writes an object from r, which holds size bytes.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// URL is the source a jobspec names for key.
	URL(key string) string
}

// ErrExists is a version that is already published.
var ErrExists = errors.New("already published")

// Package is a release tarball, inspected.
type Package struct {
	Path    string
	Size    int64
	SHA256  string
	Name    string
	Version string
	Kind    release.Kind
	// UpFrom lists the versions its relup upgrades from: a hot-upgrade
	// package when not empty.
	UpFrom []string
}

// Inspect checks that path is a release tarball the driver can run, the
// way the driver unpacks it, and reads what it holds.
func Inspect(path string) (*Package, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	dir, err := os.MkdirTemp("", "beamctl-publish-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := unpack.File(path, dir, unpack.Limits{}); err != nil {
		return nil, fmt.Errorf("%s is not a release tarball the driver can unpack: %w", path, err)
	}
	rel, err := release.Find(dir, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p := &Package{Path: path, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)), Name: rel.Name, Version: rel.Version, Kind: rel.Kind}
	if rel.Kind != release.Shipment {
		if pkg, err := relup.Inspect(rel.Root, rel.Name); err == nil {
			p.UpFrom = pkg.UpFrom()
		}
	}
	if p.Version == "" {
		// A Gleam shipment carries no release version: keep the
		// tarball's own name.
		p.Version = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), p.Name+"-"), ".tar.gz")
	}
	return p, nil
}

// Key returns the object name of the package under prefix.
func (p *Package) Key(prefix string) string {
	name := fmt.Sprintf("%s-%s.tar.gz", p.Name, p.Version)
	if prefix = strings.Trim(prefix, "/"); prefix == "" {
		return name
	}
	return prefix + "/" + name
}

// Publish uploads the package and its .sha256 under prefix, unless that
// version is there already and force is off. progress, if not nil, sees
// the bytes sent. It returns the tarball's source URL.
func Publish(ctx context.Context, s Store, p *Package, prefix string, force bool, progress func(done, total int64)) (string, error) {
	key := p.Key(prefix)
	if !force {
		ok, err := s.Exists(ctx, key)
		if err != nil {
			return "", err
		}
		if ok {
			return "", fmt.Errorf("%s: %w; publish a new version, or pass -force to replace it", s.URL(key), ErrExists)
		}
	}
	f, err := os.Open(p.Path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var r io.Reader = f
	if progress != nil {
		r = &counter{r: f, total: p.Size, fn: progress}
	}
	if err := s.Put(ctx, key, r, p.Size); err != nil {
		return "", fmt.Errorf("upload %s: %w", s.URL(key), err)
	}
	// The checksum goes last: a reader that sees it sees the tarball.
	sum := p.SHA256 + "  " + filepath.Base(key) + "\n"
	if err := s.Put(ctx, key+".sha256", strings.NewReader(sum), int64(len(sum))); err != nil {
		return "", fmt.Errorf("upload %s.sha256: %w", s.URL(key), err)
	}
	return s.URL(key), nil
}

// counter reports the bytes read through it.
type counter struct {
	r     io.Reader
	done  int64
	total int64
	fn    func(done, total int64)
}

func (c *counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.done += int64(n)
	if n > 0 {
		c.fn(c.done, c.total)
	}
	return n, err
}

// Dir is a Store in a local directory, for file:// sources and for tests.
type Dir struct{ Root string }

// Exists reports whether the file is there.
func (d Dir) Exists(_ context.Context, key string) (bool, error) {
	_, err := os.Stat(filepath.Join(d.Root, key))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Put writes the file atomically.
func (d Dir) Put(_ context.Context, key string, r io.Reader, _ int64) error {
	dst := filepath.Join(d.Root, key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".publish-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// URL returns the file:// source of a key.
func (d Dir) URL(key string) string {
	abs, err := filepath.Abs(filepath.Join(d.Root, key))
	if err != nil {
		abs = filepath.Join(d.Root, key)
	}
	return "file://" + abs
}
