package launch

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

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
// cookie it found. Those arguments are removed; everything else about the
// scripts (env.sh, runtime config, hooks) stays as the release built it.

// CookieEnv lists the variables that release scripts read a cookie from.
// The driver removes them from the node's environment.
var CookieEnv = []string{"RELEASE_COOKIE", "RELX_COOKIE"}

// writeHome writes the private HOME with the cookie and returns its path.
func writeHome(dir, cookie string, uid, gid int) (string, error) {
	if err := checkCookie(cookie); err != nil {
		return "", err
	}
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return "", fmt.Errorf("launch: %w", err)
	}
	p := filepath.Join(home, ".erlang.cookie")
	_ = os.Remove(p) // 0400: replace rather than rewrite
	// O_EXCL|O_NOFOLLOW: never write through a link the task user made.
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o400)
	if err != nil {
		return "", fmt.Errorf("launch: write cookie: %w", err)
	}
	_, werr := f.WriteString(cookie)
	if uid >= 0 && werr == nil {
		werr = f.Chown(uid, gid)
	}
	if err := errors.Join(werr, f.Close()); err != nil {
		return "", fmt.Errorf("launch: write cookie: %w", err)
	}
	if uid >= 0 {
		if err := os.Lchown(home, uid, gid); err != nil {
			return "", fmt.Errorf("launch: %w", err)
		}
	}
	return home, nil
}

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

// mixCookieArgs are what mix's bin/NAME adds to every VM it starts.
var mixCookieArgs = []string{` --cookie "$RELEASE_COOKIE"`}

// relxCookieArgs are what relx's script adds to its client tools.
var relxCookieArgs = []string{
	` -setcookie "${COOKIE}"`,
	` -setcookie "$COOKIE"`,
	` -setcookie ${COOKIE}`,
	` -c "${COOKIE}"`,
}

// Scrub removes the cookie arguments from the start scripts of version
// r.Version of the release in r.Root, as Build does for the version it
// starts: for a version that a hot upgrade adds to a running release.
func Scrub(r *release.Release) error {
	switch r.Kind {
	case release.Mix:
		return scrubScript(filepath.Join(r.Root, "bin", r.Name), mixCookieArgs)
	case release.Relx:
		for _, s := range []string{r.Name, r.Name + "-" + r.Version} {
			p := filepath.Join(r.Root, "bin", s)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			if err := scrubScript(p, relxCookieArgs); err != nil {
				return err
			}
		}
	}
	return nil
}

// scrubScript removes every occurrence of args from the script at path, and
// fails if a cookie argument it does not know remains.
func scrubScript(path string, args []string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	out := b
	for _, a := range args {
		out = bytes.ReplaceAll(out, []byte(a), nil)
	}
	for _, line := range strings.Split(string(out), "\n") {
		l := strings.TrimSpace(line)
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.Contains(l, `--cookie "$`) || strings.Contains(l, `-setcookie "$`) || strings.Contains(l, `-setcookie $`) {
			return fmt.Errorf("%s passes the cookie in a way the driver does not know (%q); "+
				"it would be visible in the process list, so the node is not started", filepath.Base(path), l)
		}
	}
	if bytes.Equal(out, b) {
		return nil
	}
	// Replace the file rather than write through it: it may be a hard link
	// into a shared copy of the release.
	// A fresh, exclusively created file: never one an archive planted.
	f, err := os.CreateTemp(filepath.Dir(path), ".beam-driver-*")
	if err != nil {
		return fmt.Errorf("launch: %w", err)
	}
	_, werr := f.Write(out)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), fi.Mode().Perm())); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("launch: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("launch: %w", err)
	}
	return nil
}
