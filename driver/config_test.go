package driver

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
)

const goodSHA = "904507367cdd9b14b63eefcfaa387c26e195cccd6f98ea76ad966542d8781fc9"

func TestTaskConfigSpecParses(t *testing.T) {
	var tc TaskConfig
	hclutils.NewConfigParser(taskConfigSpec).ParseHCL(t, `
config {
  release {
    source = "https://releases.example.com/shop-1.0.0.tar.gz"
    sha256 = "`+goodSHA+`"
    name   = "shop"
  }
  node_name   = "shop-web"
  dist_port   = "dist"
  cookie_file = "secrets/erlang.cookie"
  pre_commands = [
    ["eval", "Shop.Release.migrate()"],
    ["bin/seed", "--quick"],
  ]
  pre_command_timeout = "2m"
}`, &tc)
	want := TaskConfig{
		Release:    ReleaseConfig{Source: "https://releases.example.com/shop-1.0.0.tar.gz", SHA256: goodSHA, Name: "shop"},
		NodeName:   "shop-web",
		DistPort:   "dist",
		CookieFile: "secrets/erlang.cookie",
		PreCommands: [][]string{
			{"eval", "Shop.Release.migrate()"},
			{"bin/seed", "--quick"},
		},
		PreCommandTimeout: "2m",
	}
	if !reflect.DeepEqual(tc, want) {
		t.Fatalf("parsed %+v, want %+v", tc, want)
	}
	if err := tc.validate(true); err != nil {
		t.Fatal(err)
	}
}

func TestTaskConfigValidate(t *testing.T) {
	ok := func() TaskConfig {
		return TaskConfig{Release: ReleaseConfig{Source: "https://x/app.tar.gz", SHA256: goodSHA}}
	}
	cases := []struct {
		name       string
		mutate     func(*TaskConfig)
		requireSHA bool
		want       string // "" means valid
	}{
		{"valid https", func(*TaskConfig) {}, true, ""},
		{"valid file", func(c *TaskConfig) { c.Release.Source = "file:///srv/app.tar.gz" }, true, ""},
		{"valid absolute path", func(c *TaskConfig) { c.Release.Source = "/srv/app.tar.gz" }, true, ""},
		{"missing source", func(c *TaskConfig) { c.Release.Source = "" }, true, "release.source is required"},
		{"unsupported scheme", func(c *TaskConfig) { c.Release.Source = "ftp://x/app.tar.gz" }, true, "release.source"},
		{"relative path", func(c *TaskConfig) { c.Release.Source = "app.tar.gz" }, true, "release.source"},
		{"credentials redacted", func(c *TaskConfig) { c.Release.Source = "ftp://user:hunter2@x/a" }, true, "REDACTED"},
		{"sha256 may come from a .sha256 file", func(c *TaskConfig) { c.Release.SHA256 = "" }, true, ""},
		{"valid s3", func(c *TaskConfig) { c.Release.Source = "s3://releases/dist/shop/shop-1.0.0.tar.gz" }, true, ""},
		{"valid gs", func(c *TaskConfig) { c.Release.Source = "gs://releases/dist/shop/shop-1.0.0.tar.gz" }, true, ""},
		{"short sha256", func(c *TaskConfig) { c.Release.SHA256 = "abc" }, true, "release.sha256"},
		{"non-hex sha256", func(c *TaskConfig) { c.Release.SHA256 = strings.Repeat("g", 64) }, true, "64 hex"},
		{"bad release name", func(c *TaskConfig) { c.Release.Name = "my-app" }, true, "release.name"},
		{"bad node name", func(c *TaskConfig) { c.NodeName, c.DistPort, c.CookieEnv = "a b", "dist", "C" }, true, "node_name"},
		{"distribution with a cookie file", func(c *TaskConfig) { c.DistPort, c.CookieFile = "dist", "secrets/cookie" }, true, ""},
		{"distribution with a cookie env", func(c *TaskConfig) { c.DistPort, c.CookieEnv = "dist", "ERLANG_COOKIE" }, true, ""},
		{"distribution without a cookie", func(c *TaskConfig) { c.DistPort = "dist" }, true, "no cookie"},
		{"two cookies", func(c *TaskConfig) { c.DistPort, c.CookieFile, c.CookieEnv = "dist", "a", "B" }, true, "use one"},
		{"cookie without distribution", func(c *TaskConfig) { c.CookieFile = "secrets/cookie" }, true, "dist_port is not"},
		{"cookie file outside the task", func(c *TaskConfig) { c.DistPort, c.CookieFile = "dist", "../../etc/cookie" }, true, "in the task's secrets/ or local/"},
		{"absolute cookie file", func(c *TaskConfig) { c.DistPort, c.CookieFile = "dist", "/etc/cookie" }, true, "in the task's secrets/ or local/"},
		{"empty pre-command", func(c *TaskConfig) { c.PreCommands = [][]string{{}} }, true, "pre_commands[0] is empty"},
		{"eval without expression", func(c *TaskConfig) { c.PreCommands = [][]string{{"eval"}} }, true, "exactly one expression"},
		{"bad pre-command timeout", func(c *TaskConfig) { c.PreCommandTimeout = "soon" }, true, "pre_command_timeout"},
		{"unbounded pre-command timeout", func(c *TaskConfig) { c.PreCommandTimeout = "1000h" }, true, "over the limit of 1h0m0s"},
		{"bad cookie env", func(c *TaskConfig) { c.DistPort, c.CookieEnv = "dist", "MY-COOKIE" }, true, "cookie_env"},
		{"node name without port", func(c *TaskConfig) { c.NodeName = "shop" }, true, "dist_port is not"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok()
			tc.mutate(&c)
			err := c.validate(tc.requireSHA)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("no error, want one mentioning %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks a credential: %v", err)
			}
		})
	}
}

func TestPluginConfigValidate(t *testing.T) {
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{DataDir: "/var/lib/beam", EPMDPort: 4369}, ""},
		{Config{DataDir: "", EPMDPort: 4369}, "data_dir must not be empty"},
		{Config{DataDir: "relative/dir", EPMDPort: 4369}, "absolute"},
		{Config{DataDir: "/var/lib/beam", EPMDPort: 0}, "epmd_port"},
		{Config{DataDir: "/var/lib/beam", EPMDPort: 70000}, "epmd_port"},
	}
	for _, tc := range cases {
		err := tc.cfg.validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestNodeName(t *testing.T) {
	ports := &structs.AllocatedPorts{
		{Label: "http", Value: 24001, HostIP: "10.0.0.5"},
		{Label: "dist", Value: 24002, HostIP: "10.0.0.5"},
	}
	cfg := &drivers.TaskConfig{
		JobName:   "my shop/api",
		AllocID:   "0123abcd-4567-89ef-0123-456789abcdef",
		Resources: &drivers.Resources{Ports: ports},
	}
	cases := []struct {
		tc       TaskConfig
		wantName string
		wantPort int
		wantErr  string
	}{
		{TaskConfig{}, "", 0, ""},
		{TaskConfig{DistPort: "dist"}, "my-shop-api-0123abcd@10.0.0.5", 24002, ""},
		{TaskConfig{DistPort: "dist", NodeName: "web"}, "web@10.0.0.5", 24002, ""},
		{TaskConfig{DistPort: "dist", NodeName: "web@web.internal"}, "web@web.internal", 24002, ""},
		{TaskConfig{DistPort: "epmd"}, "", 0, `dist_port = "epmd" is not a port`},
	}
	for _, c := range cases {
		name, port, _, err := nodeName(cfg, &c.tc)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%+v: error %v, want %q", c.tc, err, c.wantErr)
			}
			continue
		}
		if err != nil || name != c.wantName || port != c.wantPort {
			t.Errorf("%+v: got %q %d %v, want %q %d", c.tc, name, port, err, c.wantName, c.wantPort)
		}
	}
}

func TestTaskFilesInSecretsOrLocal(t *testing.T) {
	for p, ok := range map[string]bool{"secrets/erlang.cookie": true, "local/c": true, "private/vault_token": false,
		"./private/x": false, "../other/secrets/c": false, "/etc/passwd": false, "privateer/c": false, "tmp/c": false,
		"secrets": false, "local/../private/x": false, "alloc/data/c": false} {
		if taskFile(p) != ok {
			t.Errorf("taskFile(%q) = %v, want %v", p, !ok, ok)
		}
	}
}

func TestPluginConfigPolicies(t *testing.T) {
	var c Config
	hclutils.NewConfigParser(configSpec).ParseHCL(t, `
config {
  sources {
    namespace "default" { allow = ["*"] }
    namespace "team-a" { allow = ["s3://team-a-releases/", "https://artifacts.example.com/team-a/"] }
    namespace "*"      { allow = ["/srv/releases/shared/"] }
    namespace "team-c" { allow = ["s3://team-c-releases/"] }
  }
  node_names {
    namespace "team-a" { allow = ["shop-*"] }
  }
}`, &c)
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	a := c.sourcePolicy("team-a")
	if a.Check("s3://team-a-releases/app.tar.gz") != nil || a.Check("s3://team-b-releases/app.tar.gz") == nil {
		t.Errorf("team-a's policy: %+v", a)
	}
	if b := c.sourcePolicy("team-b"); b.Check("/srv/releases/shared/x.tar.gz") != nil || b.Check("s3://team-a-releases/app.tar.gz") == nil {
		t.Errorf("team-b falls back to *: %+v", b)
	}
	if c.sourcePolicy("default") != nil || c.sourcePolicy("") != nil {
		t.Errorf(`allow = ["*"] is no policy: %+v`, c.sourcePolicy("default"))
	}
	if cp := c.sourcePolicy("team-c"); cp.Check("s3://team-c-releases/x") != nil || cp.Check("s3://team-a-releases/x") == nil {
		t.Errorf("team-c's policy (each namespace its own list): %+v", cp)
	}
	task := func(ns string) *drivers.TaskConfig { return &drivers.TaskConfig{Namespace: ns} }
	if err := c.checkNodeName(task("team-a"), "shop-1@10.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := c.checkNodeName(task("team-b"), "shop-1"); err == nil || !strings.Contains(err.Error(), `namespace "team-b"`) {
		t.Errorf("team-b took shop-1: %v", err)
	}
	if err := c.checkNodeName(task("team-b"), ""); err != nil {
		t.Errorf("a default name: %v", err)
	}
	var none Config
	hclutils.NewConfigParser(configSpec).ParseHCL(t, `config {}`, &none)
	if err := none.validate(); err != nil {
		t.Fatal(err)
	}
	if none.Sources != nil || none.sourcePolicy("x") != nil || none.checkNodeName(task("x"), "anything") != nil {
		t.Errorf("without the blocks, no policy: %+v", none.Sources)
	}
	bad := Config{DataDir: "/x", EPMDPort: 4369, Sources: &Namespaces{Namespace: map[string]*NamespaceRule{"a": {Allow: []string{"ftp://x/"}}}}}
	if err := bad.validate(); err == nil || !strings.Contains(err.Error(), `sources { namespace "a" } allow[0]`) {
		t.Errorf("bad prefix: %v", err)
	}
}

// Two tasks that name one dynamic user at once: the first claims it, the
// second is refused until the first's start fails or it is destroyed.
func TestDynamicUserClaimed(t *testing.T) {
	var c uidClaims
	starting := func(string) bool { return true }
	if !c.claim("nomad-80001", "a", starting) {
		t.Fatal("first claim refused")
	}
	if !c.claim("nomad-80001", "a", starting) {
		t.Fatal("a task's repeated claim of its own user refused")
	}
	if c.claim("nomad-80001", "b", starting) {
		t.Fatal("a second task took a claimed user")
	}
	if !c.claim("nomad-80001", "b", func(string) bool { return false }) {
		t.Fatal("a dead owner's claim stood")
	}
	c.release("b")
	if !c.claim("nomad-80001", "c", starting) {
		t.Fatal("a released claim stood")
	}
}
