package ship

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
	"github.com/nomad-driver-beam/nomad-driver-beam/hotspec"
	"github.com/nomad-driver-beam/nomad-driver-beam/tools/rollout"
)

// Pointer is a DeployEx pointer file, versions/APP/ENV/current.json: the
// version CI wants deployed. Hash is the git commit, for information.
type Pointer struct {
	Version     string   `json:"version"`
	Hash        string   `json:"hash"`
	PreCommands []string `json:"pre_commands"`
	// SHA256, when set, is the release tarball's; otherwise the .sha256
	// published beside it is.
	SHA256 string `json:"sha256"`
}

// maxPointer bounds a pointer file.
const maxPointer = 64 << 10

// ReadPointer fetches and parses the pointer at source.
func ReadPointer(ctx context.Context, f *fetch.Fetcher, source, work string) (*Pointer, error) {
	tmp, err := os.CreateTemp(work, "pointer-*.json")
	if err != nil {
		return nil, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if _, err := f.DownloadSmall(ctx, source, tmp.Name(), maxPointer); err != nil {
		return nil, fmt.Errorf("read pointer %s: %w", fetch.Redact(source), err)
	}
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		return nil, err
	}
	var p Pointer
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf(`pointer %s is not {"version": ..., "hash": ..., "pre_commands": [...]}: %v`, fetch.Redact(source), err)
	}
	if !hotspec.ValidVersion(p.Version) {
		return nil, fmt.Errorf("pointer %s: version %q is not a release version", fetch.Redact(source), clipText(p.Version))
	}
	if p.SHA256 != "" && !regexp.MustCompile(`^[0-9a-fA-F]{64}$`).MatchString(p.SHA256) {
		return nil, fmt.Errorf("pointer %s: sha256 must be 64 hex characters", fetch.Redact(source))
	}
	return &p, nil
}

// Commands returns the pointer's pre-commands as argvs, checked as the
// driver would check them.
func (p *Pointer) Commands() ([][]string, error) {
	var out [][]string
	for i, s := range p.PreCommands {
		argv, err := rollout.Command(s)
		if err != nil {
			return nil, fmt.Errorf("pre_commands[%d]: %w", i, err)
		}
		out = append(out, argv)
	}
	return out, hotspec.CheckPreCommands(out)
}

// ReleaseSource returns where DeployEx keeps the release a pointer names:
// for BASE/versions/APP/ENV/current.json, BASE/dist/APP/APP-VERSION.tar.gz.
func ReleaseSource(pointer, version string) (string, error) {
	u, err := url.Parse(pointer)
	if err != nil {
		return "", fmt.Errorf("pointer %q is not a URL or path", fetch.Redact(pointer))
	}
	p := u.Path
	if u.Scheme == "" {
		p = filepath.ToSlash(pointer)
	}
	i := strings.LastIndex(p, "/versions/")
	rest := ""
	if i >= 0 {
		rest = p[i+len("/versions/"):]
	} else if strings.HasPrefix(p, "versions/") {
		i, rest = 0, strings.TrimPrefix(p, "versions/")
	}
	parts := strings.Split(rest, "/")
	if i < 0 || len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", fmt.Errorf("pointer %s is not at .../versions/APP/ENV/current.json, where DeployEx keeps it", fetch.Redact(pointer))
	}
	app := parts[0]
	rel := fmt.Sprintf("%s/dist/%s/%s-%s.tar.gz", p[:i], app, app, version)
	if i == 0 && !strings.HasPrefix(p, "/") {
		rel = strings.TrimPrefix(rel, "/") // a relative pointer path
	}
	if u.Scheme == "" {
		return filepath.FromSlash(rel), nil
	}
	out := *u
	out.Path, out.RawPath, out.RawQuery = rel, "", ""
	return out.String(), nil
}

func clipText(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
