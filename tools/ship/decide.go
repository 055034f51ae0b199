// Package ship takes a release to a job by the path its package allows:
// a hot canary when the package holds a relup from every version the job's
// allocations run, a full canary deployment otherwise, and the full
// deployment after a hot canary that failed and went back. It records
// every rollout in the job's history and refuses a version whose rollout
// failed on every path it had.
package ship

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/relup"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/unpack"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
)

// Package is a release tarball as ship sees it.
type Package struct {
	Source, SHA256 string
	Name, Version  string
	Kind           release.Kind
	// Relup is the package's relup reader; nil for a Gleam shipment.
	Relup *relup.Package
}

// ErrUnavailable marks a package that could not be read for a reason that
// may pass (the store is down, a timeout): trying later may work.
var ErrUnavailable = errors.New("the store is unavailable")

// unavailable wraps a fetch error that is not permanent.
func unavailable(err error) error {
	if fetch.IsPermanent(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Inspect downloads the tarball at source (s3://, gs://, http(s)://,
// file:// or a path) into work, checks it against sum (or the .sha256
// published beside it when sum is empty), and reads its release.
func Inspect(ctx context.Context, f *fetch.Fetcher, source, sum, work string) (*Package, error) {
	if sum == "" {
		s, err := f.Checksum(ctx, source)
		if err != nil {
			return nil, fmt.Errorf("no -sha256 given, and its .sha256 cannot be read: %w", unavailable(err))
		}
		sum = s
	}
	file := filepath.Join(work, "release.tar.gz")
	if _, err := f.Download(ctx, source, file, nil); err != nil {
		return nil, fmt.Errorf("download %s: %w", fetch.Redact(source), unavailable(err))
	}
	got, err := fileSHA256(file)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(got, sum) {
		return nil, fmt.Errorf("%s has sha256 %s, not %s", fetch.Redact(source), got, sum)
	}
	dir := filepath.Join(work, "release")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	if err := unpack.File(file, dir, unpack.Limits{}); err != nil {
		return nil, fmt.Errorf("%s: %w", fetch.Redact(source), err)
	}
	rel, err := release.Find(dir, "")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", fetch.Redact(source), err)
	}
	p := &Package{Source: source, SHA256: strings.ToLower(sum), Name: rel.Name, Version: rel.Version, Kind: rel.Kind}
	if rel.Kind != release.Shipment {
		if p.Relup, err = relup.InspectVersion(rel.Root, rel.Name, rel.Version); err != nil {
			return nil, fmt.Errorf("%s: %w", fetch.Redact(source), err)
		}
	}
	return p, nil
}

func fileSHA256(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Path is how a release reaches the job.
type Path string

// Paths.
const (
	Hot  Path = "hot"
	Full Path = "full"
)

// Decision is the path a package can take to a job's allocations, and why,
// in one line for the operator.
type Decision struct {
	Path   Path
	Reason string
	// Current is true when every allocation already runs the version.
	Current bool
}

// Decide picks the path: hot when every allocation runs a version the
// package's relup upgrades from, with no emulator restart, and full
// otherwise.
func Decide(p *Package, allocs []rollout.Alloc) Decision {
	if len(allocs) == 0 {
		return Decision{Path: Full, Reason: "full: the job has no running allocations to upgrade in place"}
	}
	if p.Relup == nil {
		return Decision{Path: Full, Reason: fmt.Sprintf("full: %s %s is a %s, which cannot be hot-upgraded", p.Name, p.Version, p.Kind)}
	}
	sorted := slices.Clone(allocs)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Index < sorted[j].Index })
	var from []string
	current := 0
	for _, a := range sorted {
		if a.Version == p.Version {
			current++
			continue
		}
		name := a.Release
		if name == "" {
			name = p.Name
		}
		erts := a.ERTS
		if erts == "" {
			erts = p.Relup.ERTS // an older driver: the driver itself checks
		}
		if err := p.Relup.CheckUpgrade(name, a.Version, erts); err != nil {
			return Decision{Path: Full, Reason: fmt.Sprintf("full: allocation %s runs %s: %s", short(a), orUnknown(a.Version), err)}
		}
		if !slices.Contains(from, a.Version) {
			from = append(from, a.Version)
		}
	}
	if current == len(sorted) {
		return Decision{Path: Hot, Current: true, Reason: fmt.Sprintf("nothing to do: every allocation runs %s", p.Version)}
	}
	n := len(sorted) - current
	what := fmt.Sprintf("all %d allocations", n)
	if n == 1 {
		what = "the one allocation"
	}
	if current > 0 {
		what = fmt.Sprintf("%d allocation(s); %d already run %s", n, current, p.Version)
	}
	return Decision{Path: Hot, Reason: fmt.Sprintf("hot: relup %s→%s for %s", strings.Join(from, ", "), p.Version, what)}
}

// Force checks a path the operator forced: hot must be possible.
func Force(d Decision, path Path) (Decision, error) {
	switch {
	case path == "" || path == d.Path:
		return d, nil
	case path == Hot:
		return d, errors.New("-hot: " + strings.TrimPrefix(d.Reason, "full: "))
	}
	return Decision{Path: Full, Reason: "full: forced by -full"}, nil
}

func short(a rollout.Alloc) string {
	id := a.ID
	if len(id) > 8 {
		id = id[:8]
	}
	if a.Index >= 0 {
		return fmt.Sprintf("%s[%d]", id, a.Index)
	}
	return id
}

func orUnknown(v string) string {
	if v == "" {
		return "an unknown version"
	}
	return v
}
