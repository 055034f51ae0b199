package driver

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// TestLaunchPathCannotBePlanted: Nomad's executor looks a command up under
// the task's local/ and its directory before the host. Both lookups must
// land on the plugin's own binary, whatever the task put in its directory.
func TestLaunchPathCannotBePlanted(t *testing.T) {
	bin, err := sandboxBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, taskDir := range []string{"/var/lib/nomad/alloc/0b6f/web", "/a", "/very/deep/" + strings.Repeat("x/", 40) + "task"} {
		p, err := launchPath(taskDir)
		if err != nil {
			t.Fatal(err)
		}
		for _, where := range []string{filepath.Join(taskDir, "local", p), filepath.Join(taskDir, p)} {
			if where != bin {
				t.Errorf("task dir %s: the executor would look at %s, not %s", taskDir, where, bin)
			}
		}
	}
}

func TestIsolationConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string // in the error; empty for none
	}{
		{Config{DataDir: "/d", EPMDPort: 4369}, ""},
		{Config{DataDir: "/d", EPMDPort: 4369, Isolation: "none"}, ""},
		{Config{DataDir: "/d", EPMDPort: 4369, Isolation: "chroot"}, `isolation = "chroot"`},
		{Config{DataDir: "/d", EPMDPort: 4369, ReadOnlyPaths: []string{"srv"}}, `read_only_paths[0] = "srv"`},
	} {
		err := c.cfg.validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.cfg, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v: error %v, want one naming %s", c.cfg, err, c.want)
		}
		if c.want == "" && (c.cfg.DefaultUser != "nobody" || c.cfg.Isolation == "") {
			t.Errorf("defaults: user %q, isolation %q", c.cfg.DefaultUser, c.cfg.Isolation)
		}
	}
}

// TestSandboxForConfines checks the rules a task gets: its own
// directories writable, the host's not, and the user's own groups only.
func TestSandboxForConfines(t *testing.T) {
	d, _ := newHarness(t)
	alloc := t.TempDir()
	cfg := &drivers.TaskConfig{ID: "t", AllocID: "a", Name: "web", AllocDir: alloc, User: "nobody"}
	s, err := d.sandboxFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s.UID != 65534 || !s.Landlock {
		t.Fatalf("spec %+v: want nobody under Landlock", s)
	}
	for _, g := range s.Groups {
		if g == 0 {
			t.Errorf("nobody gets group 0: %v", s.Groups)
		}
	}
	rw := strings.Join(s.ReadWrite, " ")
	if !strings.Contains(rw, filepath.Join(alloc, "web")) || !strings.Contains(rw, filepath.Join(alloc, "alloc")) {
		t.Errorf("read-write paths %v lack the task's directories", s.ReadWrite)
	}
	for _, p := range append(s.ReadOnly, s.ReadWrite...) {
		switch p {
		case "/", "/etc", "/tmp", "/var", "/root", "/home", "/run", "/dev":
			t.Errorf("the sandbox opens %s", p)
		}
	}
	cfg.User = "no-such-user-here"
	if _, err := d.sandboxFor(cfg); err == nil || !strings.Contains(err.Error(), "no-such-user-here") {
		t.Errorf("unknown user: %v", err)
	}
}

// TestUserPolicy: root only with allow_root, other users only when the
// operator lists them, Nomad's dynamic users always.
func TestUserPolicy(t *testing.T) {
	d, _ := newHarness(t)
	cfg := &drivers.TaskConfig{ID: "t", AllocID: "a", Name: "web", AllocDir: t.TempDir()}
	try := func(user string) error {
		cfg.User = user
		_, err := d.sandboxFor(cfg)
		return err
	}
	if err := try("root"); err == nil || !strings.Contains(err.Error(), "allow_root") {
		t.Errorf("root: %v, want a refusal naming allow_root", err)
	}
	if err := try("daemon"); err == nil || !strings.Contains(err.Error(), "allowed_users") {
		t.Errorf("daemon: %v, want a refusal naming allowed_users", err)
	}
	// A jobspec can name nomad-N itself: only with default_user =
	// "dynamic", and only from the pool, is it a dynamic user.
	if err := try("nomad-80123"); err == nil {
		t.Error("nomad-80123 allowed with default_user = nobody")
	}
	d.config.DefaultUser = dynamicDefault
	if err := try("nomad-80123"); err != nil {
		t.Errorf("a dynamic workload user: %v", err)
	}
	if s, _ := d.sandboxFor(cfg); s.UID != 80123 || s.GID != 80123 {
		t.Errorf("dynamic user spec %+v", s)
	}
	for _, u := range []string{"nomad-999", "nomad-65534", "nomad-0", "nomad-080123"} {
		if err := try(u); err == nil {
			t.Errorf("%s allowed: outside the pool, or an existing user", u)
		}
	}
	d.config.DefaultUser = "nobody"
	d.config.AllowRoot = true
	d.config.AllowedUsers = []string{"daemon"}
	for _, u := range []string{"root", "daemon", "nobody"} {
		if err := try(u); err != nil {
			t.Errorf("%s, allowed: %v", u, err)
		}
	}
}

func TestDynamicDefaultUser(t *testing.T) {
	d, _ := newHarness(t)
	if c, _ := d.Capabilities(); c.DynamicWorkloadUsers {
		t.Error("dynamic workload users claimed with default_user = nobody")
	}
	d.config.DefaultUser = dynamicDefault
	if c, _ := d.Capabilities(); !c.DynamicWorkloadUsers || capabilities.DynamicWorkloadUsers {
		t.Error("default_user = dynamic does not claim dynamic workload users, or changed the shared capabilities")
	}
}
