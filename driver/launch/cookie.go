package launch

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/release"
)

// The cookie never goes on a command line, where any local user can read
// it in /proc/PID/cmdline. Instead the node runs with a private HOME that
// holds .erlang.cookie (mode 0400), which the VM and every client tool
// (erl, erl_call, remote shells) read when no cookie is given to them.
//
// The release scripts do give one, so the driver edits its private copy of
// them: mix's bin/NAME passes --cookie "$RELEASE_COOKIE" to every VM it
// starts, and relx's script passes -setcookie or erl_call -c with the
// cookie it found. Those exact arguments are removed (see scripts.go for
// the known shapes). Any other reference to the cookie left in a script
// that can reach a command line (the start scripts, env.sh, relx hooks and
// extensions) refuses the release: the driver cannot rewrite it with
// certainty.

// CookieEnv lists the variables that release scripts read a cookie from.
// The driver removes them from the node's environment.
var CookieEnv = []string{"RELEASE_COOKIE", "RELX_COOKIE"}

// checkCookie rejects a cookie the VM would misread, without quoting it.
func checkCookie(c string) error {
	if c == "" {
		return errors.New("the distribution cookie is empty; check the template that renders it")
	}
	if len(c) > 255 {
		return fmt.Errorf("the distribution cookie is %d bytes long; the VM accepts at most 255", len(c))
	}
	for _, r := range c {
		if r <= ' ' || r > '~' {
			return errors.New("the distribution cookie has whitespace or non-ASCII characters; use printable ASCII only")
		}
	}
	return nil
}

// Scrub removes the known cookie arguments from the scripts of version
// r.Version of the release in r.Root, and refuses the release if any of
// them still refers to the cookie; a refused release is left as it was.
// The driver runs it on its own copy of every release it unpacks: the one
// a task starts and each hot-upgrade package.
func Scrub(r *release.Release) error {
	list, err := scriptsOf(r)
	if err != nil {
		return err
	}
	return scrubAll(list)
}

// script is one file of a release that the driver scans.
type script struct {
	root, rel string // rel is relative to the release root
	shape     *shape
	data, out []byte     // as read, and with the cookie arguments removed
	lines     []*logical // of out
}

const (
	// maxScript bounds one script that the driver scans: relx's start
	// script, the largest, is some 40 KiB.
	maxScript = release.MaxFileSize
	// maxScripts bounds all the scripts of a release together, which a
	// release could otherwise make as many as it has files (or hard
	// links to one file) under bin/hooks.
	maxScripts = 8 << 20
	// maxErrors is how many errors about its scripts refuse a release.
	maxErrors = 8
)

func load(root, rel string, sh *shape) (*script, error) {
	b, err := release.ReadIn(root, filepath.ToSlash(rel), maxScript)
	if err != nil {
		return nil, err
	}
	s := &script{root: root, rel: rel, shape: sh, data: b, out: sh.apply(b)}
	s.lines = logicalLines(string(s.out))
	return s, nil
}

// scrubAll checks every script before it rewrites any: a refused release
// is left as it was.
func scrubAll(list []*script) error {
	t := newTaint()
	t.learn(list)
	for _, s := range list {
		if f := t.scan(s.lines, s.shape); f != nil {
			// Never the line itself: it may hold a secret.
			return fmt.Errorf("%s line %d: %s that the driver cannot remove with certainty; it would put the "+
				"distribution cookie on a process command line, which every local user can read, so the node is "+
				"not started. Remove the custom cookie handling from %s: the driver gives the node its cookie "+
				"through HOME/.erlang.cookie, which the VM, remote shells and erl_call read by themselves",
				s.rel, f.line, f.what, s.rel)
		}
	}
	for _, s := range list {
		if !bytes.Equal(s.out, s.data) {
			if err := replaceFile(s.root, s.rel, s.out); err != nil {
				return err
			}
		}
	}
	return nil
}

// replaceFile replaces the file rel beneath root rather than write through
// it: it may be a link, or a hard link into a shared copy of the release.
// The new file is created exclusively, so never one that someone planted,
// and every step goes through an os.Root on root, so none leaves the tree.
func replaceFile(root, rel string, data []byte) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	defer r.Close()
	rel = filepath.ToSlash(rel)
	fi, err := r.Stat(rel)
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	tmp := path.Join(path.Dir(rel), fmt.Sprintf(".beam-driver-%d-%d", os.Getpid(), time.Now().UnixNano()))
	f, err := r.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	_, werr := f.Write(data)
	merr := f.Chmod(fi.Mode().Perm())
	if err := errors.Join(werr, merr, f.Close()); err != nil {
		_ = r.Remove(tmp)
		return fmt.Errorf("launch: %w", err)
	}
	if err := r.Rename(tmp, rel); err != nil {
		_ = r.Remove(tmp)
		return fmt.Errorf("launch: %w", err)
	}
	return nil
}

// scriptsOf lists the scripts of version r.Version that can reach a command
// line: the start scripts, releases/VSN/env.sh and every other script in
// releases/VSN, and relx's hooks and extensions, both those the start
// scripts name and all under bin/hooks, bin/extensions and releases/VSN/hooks.
func scriptsOf(r *release.Release) ([]*script, error) {
	var (
		list  []*script
		seen  = map[string]bool{}
		total int
		errs  []error
	)
	// fail keeps the first few errors: a release can make thousands.
	fail := func(err error) {
		if err != nil && len(errs) < maxErrors {
			errs = append(errs, err)
		}
	}
	add := func(rel string, sh *shape, required bool) {
		if total > maxScripts {
			return // already refused
		}
		rel = filepath.Clean(rel)
		if rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
			fail(fmt.Errorf("%q is outside the release, so the driver cannot check it for the cookie", release.Clip(rel)))
			return
		}
		if seen[rel] {
			return
		}
		s, err := load(r.Root, rel, sh)
		if errors.Is(err, fs.ErrNotExist) && !required {
			return
		} else if err != nil {
			fail(fmt.Errorf("launch: %w", err))
			return
		}
		if total += len(s.data); total > maxScripts {
			fail(fmt.Errorf("launch: the scripts that the driver scans for the cookie add up to more than %s "+
				"(at %s); a release needs a small fraction of that", release.Size(maxScripts), rel))
			return
		}
		seen[rel] = true
		list = append(list, s)
	}
	if r.Kind == release.Shipment {
		add("entrypoint.sh", plain, false)
		return list, errors.Join(errs...)
	}
	if err := errors.Join(release.CheckName(r.Root, "the release name", r.Name),
		release.CheckName(r.Root, "the release version", r.Version)); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(r.Root)
	if err != nil {
		return nil, fmt.Errorf("launch: %w", err)
	}
	defer root.Close()
	tree := root.FS()
	bins := []string{filepath.Join("bin", r.Name), filepath.Join("bin", r.Name+"-"+r.Version)}
	vsn := filepath.Join("releases", r.Version)
	switch r.Kind {
	case release.Mix:
		add(bins[0], mixBin, true)
		add(bins[1], mixBin, false)
		add(filepath.Join(vsn, "elixir"), elixirCLI, false)
	case release.Relx:
		add(bins[0], relxBin, false)
		add(bins[1], relxBin, false)
		for _, s := range append([]*script(nil), list...) {
			for _, h := range hooksOf(s.data) {
				if strings.ContainsAny(h, "$`") {
					fail(fmt.Errorf("%s names a hook or extension at a path the driver cannot resolve", s.rel))
					continue
				}
				// relx runs them from "$SCRIPT_DIR/$HOOK": relative to bin/.
				add(filepath.Join("bin", h), plain, false)
			}
		}
	default:
		return nil, fmt.Errorf("launch: unknown release kind %q", r.Kind)
	}
	add(filepath.Join(vsn, "env.sh"), plain, false)
	for _, dir := range []string{filepath.Join("bin", "hooks"), filepath.Join("bin", "extensions"), filepath.Join(vsn, "hooks")} {
		werr := fs.WalkDir(tree, filepath.ToSlash(dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() {
				add(filepath.FromSlash(p), plain, false)
			}
			if total > maxScripts {
				return fs.SkipAll
			}
			return nil
		})
		if !errors.Is(werr, fs.ErrNotExist) {
			fail(werr)
		}
	}
	ents, rerr := fs.ReadDir(tree, filepath.ToSlash(vsn))
	if rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
		fail(fmt.Errorf("launch: %w", rerr))
	}
	for _, e := range ents {
		rel := filepath.Join(vsn, e.Name())
		if total <= maxScripts && e.Type().IsRegular() && !seen[rel] && hasShebang(tree, filepath.ToSlash(rel)) {
			add(rel, plain, false)
		}
	}
	return list, errors.Join(errs...)
}

// hookRe finds relx's hook and extension declarations, such as
// PRE_START_HOOKS="hooks/pre_start|arg hooks/builtin/pid|/run/x.pid" and
// foo_extension="extensions/foo".
var hookRe = regexp.MustCompile(`(?m)^[ \t]*(?:[A-Z_]+_HOOKS?|[A-Za-z0-9_]+_extension)="([^"]*)"`)

func hooksOf(b []byte) []string {
	var out []string
	for _, m := range hookRe.FindAllSubmatch(b, -1) {
		for _, e := range strings.Fields(string(m[1])) {
			if p, _, _ := strings.Cut(e, "|"); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// hasShebang reports whether the file name in tree starts with #!: a
// script, which the driver scans whatever its interpreter.
func hasShebang(tree fs.FS, name string) bool {
	f, err := tree.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [2]byte
	n, _ := f.Read(b[:])
	return n == 2 && string(b[:]) == "#!"
}
