package driver

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/drivers/fsisolation"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
)

const (
	// PluginName is the name jobspecs use: driver = "beam".
	PluginName = "beam"

	// PluginVersion is the version of this driver.
	PluginVersion = "0.1.0"

	fingerprintPeriod = 30 * time.Second

	// taskHandleVersion is the version of the persisted task state.
	taskHandleVersion = 1
)

var (
	pluginInfo = &base.PluginInfoResponse{
		Type:              base.PluginTypeDriver,
		PluginApiVersions: []string{drivers.ApiVersion010},
		PluginVersion:     PluginVersion,
		Name:              PluginName,
	}

	// configSpec is the plugin config, in the agent's
	// plugin "nomad-driver-beam" { config { ... } } block.
	configSpec = hclspec.NewObject(map[string]*hclspec.Spec{
		"data_dir": hclspec.NewDefault(
			hclspec.NewAttr("data_dir", "string", false),
			hclspec.NewLiteral(`"/var/lib/nomad-driver-beam"`),
		),
		"erl_path": hclspec.NewAttr("erl_path", "string", false),
		"require_sha256": hclspec.NewDefault(
			hclspec.NewAttr("require_sha256", "bool", false),
			hclspec.NewLiteral("true"),
		),
		"epmd_port": hclspec.NewDefault(
			hclspec.NewAttr("epmd_port", "number", false),
			hclspec.NewLiteral("4369"),
		),
		"cache_max_mb": hclspec.NewDefault(
			hclspec.NewAttr("cache_max_mb", "number", false),
			hclspec.NewLiteral("10240"),
		),
		"fetch_retry_window": hclspec.NewDefault(
			hclspec.NewAttr("fetch_retry_window", "string", false),
			hclspec.NewLiteral(`"2m"`),
		),
		"s3_endpoint":    hclspec.NewAttr("s3_endpoint", "string", false),
		"s3_region":      hclspec.NewAttr("s3_region", "string", false),
		"s3_path_style":  hclspec.NewAttr("s3_path_style", "bool", false),
		"consul_address": hclspec.NewAttr("consul_address", "string", false),
		"consul_token":   hclspec.NewAttr("consul_token", "string", false),
		"epmd_addr": hclspec.NewDefault(
			hclspec.NewAttr("epmd_addr", "string", false),
			hclspec.NewLiteral(`"0.0.0.0"`),
		),
		"epmd_use_host": hclspec.NewAttr("epmd_use_host", "bool", false),
		"max_download_mb": hclspec.NewDefault(
			hclspec.NewAttr("max_download_mb", "number", false),
			hclspec.NewLiteral("4096"),
		),
		"file_roots": hclspec.NewAttr("file_roots", "list(string)", false),
		"default_user": hclspec.NewDefault(
			hclspec.NewAttr("default_user", "string", false),
			hclspec.NewLiteral(`"nobody"`),
		),
		"isolation": hclspec.NewDefault(
			hclspec.NewAttr("isolation", "string", false),
			hclspec.NewLiteral(`"landlock"`),
		),
		"allowed_users":    hclspec.NewAttr("allowed_users", "list(string)", false),
		"allow_root":       hclspec.NewAttr("allow_root", "bool", false),
		"read_only_paths":  hclspec.NewAttr("read_only_paths", "list(string)", false),
		"read_write_paths": hclspec.NewAttr("read_write_paths", "list(string)", false),
		"max_unpacked_mb": hclspec.NewDefault(
			hclspec.NewAttr("max_unpacked_mb", "number", false),
			hclspec.NewLiteral("4096"),
		),
	})

	// taskConfigSpec is the task's config { ... } block in a jobspec.
	taskConfigSpec = hclspec.NewObject(map[string]*hclspec.Spec{
		"release": hclspec.NewBlock("release", true, hclspec.NewObject(map[string]*hclspec.Spec{
			"source": hclspec.NewAttr("source", "string", true),
			"sha256": hclspec.NewAttr("sha256", "string", false),
			"name":   hclspec.NewAttr("name", "string", false),
		})),
		"node_name":       hclspec.NewAttr("node_name", "string", false),
		"dist_port":       hclspec.NewAttr("dist_port", "string", false),
		"cookie_file":     hclspec.NewAttr("cookie_file", "string", false),
		"cookie_env":      hclspec.NewAttr("cookie_env", "string", false),
		"pre_commands":    hclspec.NewAttr("pre_commands", "list(list(string))", false),
		"cluster_service": hclspec.NewAttr("cluster_service", "string", false),
		"tls": hclspec.NewBlock("tls", false, hclspec.NewObject(map[string]*hclspec.Spec{
			"cert_file": hclspec.NewAttr("cert_file", "string", true),
			"key_file":  hclspec.NewAttr("key_file", "string", true),
			"ca_file":   hclspec.NewAttr("ca_file", "string", true),
		})),
		"hot_upgrade": hclspec.NewBlock("hot_upgrade", false, hclspec.NewObject(map[string]*hclspec.Spec{
			"enabled": hclspec.NewDefault(
				hclspec.NewAttr("enabled", "bool", false),
				hclspec.NewLiteral("true"),
			),
			"variable": hclspec.NewAttr("variable", "string", false),
			"timeout": hclspec.NewDefault(
				hclspec.NewAttr("timeout", "string", false),
				hclspec.NewLiteral(`"2m"`),
			),
		})),
		"pre_command_timeout": hclspec.NewDefault(
			hclspec.NewAttr("pre_command_timeout", "string", false),
			hclspec.NewLiteral(`"10m"`),
		),
	})

	capabilities = &drivers.Capabilities{
		SendSignals: true,
		Exec:        true,
		FSIsolation: fsisolation.None,
		// The host's namespace, or the group's (bridge mode), which Nomad
		// makes and the executor enters.
		NetIsolationModes: []drivers.NetIsolationMode{
			drivers.NetIsolationModeHost,
			drivers.NetIsolationModeGroup,
		},
		MountConfigs: drivers.MountConfigSupportNone,
	}
)

// Config is the plugin config.
type Config struct {
	// DataDir holds the driver's node-wide files, such as downloads.
	DataDir string `codec:"data_dir"`
	// ErlPath is the host's erl, for releases without a bundled erts.
	// Empty means look it up in PATH.
	ErlPath string `codec:"erl_path"`
	// RequireSHA256 refuses tasks whose release has no sha256.
	RequireSHA256 bool `codec:"require_sha256"`
	// EPMDPort is where the driver's port mapper listens: the port that
	// nodes on every client use to find each other, 4369 like epmd.
	EPMDPort int `codec:"epmd_port"`
	// EPMDAddr is the address the port mapper binds. Nodes on other
	// clients must reach it at the address in a node's name.
	EPMDAddr string `codec:"epmd_addr"`
	// ConsulAddress and ConsulToken reach Consul for clustering. Empty
	// means CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN; a task's own workload
	// identity token wins over both.
	ConsulAddress string `codec:"consul_address"`
	ConsulToken   string `codec:"consul_token"`
	// CacheMaxMB is the size the release cache is evicted down to.
	CacheMaxMB int `codec:"cache_max_mb"`
	// FetchRetryWindow is how long transient fetch failures are retried.
	FetchRetryWindow string `codec:"fetch_retry_window"`
	// S3Endpoint, S3Region and S3PathStyle reach S3-compatible stores.
	S3Endpoint  string `codec:"s3_endpoint"`
	S3Region    string `codec:"s3_region"`
	S3PathStyle bool   `codec:"s3_path_style"`
	// EPMDUseHost lets nodes register with an epmd that the host already
	// runs on epmd_port, instead of failing. That epmd accepts any name
	// from any local process, so this gives up squat protection.
	EPMDUseHost bool `codec:"epmd_use_host"`
	// MaxDownloadMB caps the size of a release tarball; 4096 by default,
	// the unpacker's own limit.
	MaxDownloadMB int `codec:"max_download_mb"`
	// MaxUnpackedMB caps what a release tarball may unpack to, against
	// archives that compress well (a few MB of zeros make gigabytes);
	// 4096 by default.
	MaxUnpackedMB int `codec:"max_unpacked_mb"`
	// FileRoots lists the directories that file:// and absolute-path
	// sources may read from. Empty turns file sources off: they would read
	// any file the plugin (root) can.
	FileRoots []string `codec:"file_roots"`
	// DefaultUser runs tasks whose jobspec sets no user; "nobody" by
	// default, as Nomad's exec driver. "dynamic" gives each such task a
	// uid of its own from the client's dynamic workload user pool.
	DefaultUser string `codec:"default_user"`
	// AllowedUsers are the users besides DefaultUser that a jobspec may
	// name; "*" allows any but root. Landlock does not govern connecting
	// to UNIX sockets, so a user in the docker group, say, would reach
	// the Docker daemon.
	AllowedUsers []string `codec:"allowed_users"`
	// AllowRoot lets tasks run as root (uid 0), with a reduced set of
	// capabilities.
	AllowRoot bool `codec:"allow_root"`
	// Isolation is "landlock" (the default): a task sees its own
	// directories and the host's system paths, read-only. "none" leaves
	// it the whole host, as raw_exec.
	Isolation string `codec:"isolation"`
	// ReadOnlyPaths are more host paths that confined tasks may read.
	ReadOnlyPaths []string `codec:"read_only_paths"`
	// ReadWritePaths are host directories that every confined task of
	// the client may also write, such as a shared log directory.
	ReadWritePaths []string `codec:"read_write_paths"`
}

// dynamicDefault as default_user gives each task a dynamic workload user.
const dynamicDefault = "dynamic"

// Isolation modes.
const (
	isolationLandlock = "landlock"
	isolationNone     = "none"
)

func (c *Config) validate() error {
	if c.DataDir == "" {
		return errors.New(`data_dir must not be empty; set it in plugin "nomad-driver-beam" { config { data_dir = "/var/lib/nomad-driver-beam" } }`)
	}
	if !strings.HasPrefix(c.DataDir, "/") {
		return fmt.Errorf("data_dir = %q must be an absolute path", c.DataDir)
	}
	if c.EPMDPort < 1 || c.EPMDPort > 65535 {
		return fmt.Errorf("epmd_port = %d must be a TCP port (1-65535); the default is 4369", c.EPMDPort)
	}
	if c.FetchRetryWindow != "" {
		if d, err := time.ParseDuration(c.FetchRetryWindow); err != nil || d < 0 {
			return fmt.Errorf("fetch_retry_window = %q must be a duration such as \"2m\"", c.FetchRetryWindow)
		}
	}
	if c.CacheMaxMB < 0 {
		return fmt.Errorf("cache_max_mb = %d must not be negative; 0 turns eviction off", c.CacheMaxMB)
	}
	if c.EPMDAddr == "" {
		c.EPMDAddr = "0.0.0.0"
	}
	if c.MaxDownloadMB < 0 {
		return fmt.Errorf("max_download_mb = %d must not be negative; 0 means the default, 4096", c.MaxDownloadMB)
	}
	if c.MaxDownloadMB == 0 {
		c.MaxDownloadMB = 4096
	}
	if c.MaxUnpackedMB < 0 {
		return fmt.Errorf("max_unpacked_mb = %d must not be negative; 0 means the default, 4096", c.MaxUnpackedMB)
	}
	if c.MaxUnpackedMB == 0 {
		c.MaxUnpackedMB = 4096
	}
	if c.DefaultUser == "" {
		c.DefaultUser = "nobody"
	}
	switch c.Isolation {
	case "":
		c.Isolation = isolationLandlock
	case isolationLandlock, isolationNone:
	default:
		return fmt.Errorf(`isolation = %q must be "landlock" (the default) or "none" (no file-system isolation, as raw_exec)`, c.Isolation)
	}
	for name, paths := range map[string][]string{"read_only_paths": c.ReadOnlyPaths, "read_write_paths": c.ReadWritePaths} {
		for i, p := range paths {
			if !filepath.IsAbs(p) {
				return fmt.Errorf("%s[%d] = %q must be an absolute path", name, i, p)
			}
			paths[i] = filepath.Clean(p)
		}
	}
	for i, r := range c.FileRoots {
		if !filepath.IsAbs(r) {
			return fmt.Errorf("file_roots[%d] = %q must be an absolute directory, such as \"/srv/releases\"", i, r)
		}
		c.FileRoots[i] = filepath.Clean(r)
	}
	return nil
}

// TaskConfig is the task's config block.
type TaskConfig struct {
	Release ReleaseConfig `codec:"release"`
	// NodeName overrides the node name. Without @host, the address of the
	// distribution port is added.
	NodeName string `codec:"node_name"`
	// DistPort is the label of a port in the group's network block that the
	// node listens on for distribution. Empty turns distribution off.
	DistPort string `codec:"dist_port"`
	// CookieFile is a file, relative to the task directory, that holds the
	// distribution cookie: usually secrets/..., rendered by a template.
	CookieFile string `codec:"cookie_file"`
	// CookieEnv names an environment variable of the task that holds the
	// cookie, for a template with env = true. The node never sees it.
	CookieEnv string `codec:"cookie_env"`
	// PreCommands run in order before the node starts, each an argv with
	// no shell: ["eval", "MyApp.Release.migrate()"] or a program in the
	// release. The node starts only if all succeed.
	PreCommands [][]string `codec:"pre_commands"`
	// PreCommandTimeout bounds each pre-command, as a Go duration.
	PreCommandTimeout string `codec:"pre_command_timeout"`
	// ClusterService names a Consul service, normally the job's own
	// distribution-port service; the driver keeps the node connected to
	// every healthy instance of it.
	ClusterService string `codec:"cluster_service"`
	// TLS turns on mutual TLS distribution (-proto_dist inet_tls).
	TLS TLSConfig `codec:"tls"`
	// HotUpgrade lets the node take relup hot upgrades in place.
	HotUpgrade HotUpgradeConfig `codec:"hot_upgrade"`
}

// HotUpgradeConfig turns on hot upgrades. The driver follows a Nomad
// Variable through the task's workload identity; each key is an
// allocation ID (or "all", for every allocation without a key of its own)
// and each value a JSON target: {"version", "source", "sha256"}.
type HotUpgradeConfig struct {
	Enabled bool `codec:"enabled"`
	// Variable is the Variable's path. The default,
	// nomad/jobs/JOB/GROUP/TASK, is one the task's identity may read.
	Variable string `codec:"variable"`
	// Timeout bounds one whole upgrade, fetch included.
	Timeout string `codec:"timeout"`
}

// timeout returns the upgrade timeout, two minutes by default.
func (h HotUpgradeConfig) timeout() time.Duration {
	d, err := time.ParseDuration(h.Timeout)
	if err != nil || d <= 0 {
		return 2 * time.Minute
	}
	return d
}

var validVarPath = regexp.MustCompile(`^[a-zA-Z0-9-_~/]{1,128}$`)

// TLSConfig names the node's certificate, key and CA, relative to the task
// directory, usually rendered into secrets/ from Vault PKI or Nomad
// Variables.
type TLSConfig struct {
	CertFile string `codec:"cert_file"`
	KeyFile  string `codec:"key_file"`
	CAFile   string `codec:"ca_file"`
}

// enabled reports whether the tls block is set.
func (t TLSConfig) enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.CAFile != "" }

// maxPreCommandTimeout bounds pre_command_timeout: a pre-command holds the
// task's start, and with it a StartTask call of the client.
const maxPreCommandTimeout = time.Hour

func (c *TaskConfig) preCommandTimeout() time.Duration {
	d, err := time.ParseDuration(c.PreCommandTimeout)
	if err != nil || d <= 0 {
		return 10 * time.Minute
	}
	return d
}

// ReleaseConfig says where the release tarball comes from.
type ReleaseConfig struct {
	Source string `codec:"source"`
	SHA256 string `codec:"sha256"`
	// Name picks one release in a tarball that holds several.
	Name string `codec:"name"`

	// hot marks a hot-upgrade target rather than the task config's
	// release block, for messages that name the field to fix.
	hot bool
}

// field names the sha256 setting that messages tell the operator to fix.
func (r ReleaseConfig) field() string {
	if r.hot {
		return "the hot-upgrade target's sha256 (beamctl upgrade -sha256)"
	}
	return "release.sha256"
}

var (
	sha256Pattern   = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	namePattern     = regexp.MustCompile(`^[A-Za-z0-9_]+$`)
	nodeNamePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]+(@[A-Za-z0-9_.:-]+)?$`)
	envNamePattern  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	schemes         = []string{"file://", "http://", "https://", "s3://", "gs://", "/"}
)

// validate checks a task config, with errors that name the field.
func (c *TaskConfig) validate(requireSHA bool) error {
	var errs []error
	src := c.Release.Source
	switch {
	case src == "":
		errs = append(errs, errors.New(`release.source is required, e.g. "https://releases.example.com/app-1.0.0.tar.gz"`))
	case !hasAnyPrefix(src, schemes):
		errs = append(errs, fmt.Errorf("release.source %q: unsupported; use s3://, gs://, https://, http:// or file:///abs/path", fetch.Redact(src)))
	}
	// Without release.sha256, the driver reads <source>.sha256; it fails
	// then if require_sha256 is on and there is none.
	switch {
	case c.Release.SHA256 != "" && !sha256Pattern.MatchString(c.Release.SHA256):
		errs = append(errs, fmt.Errorf("release.sha256 %q must be 64 hex characters, as printed by sha256sum", c.Release.SHA256))
	}
	if c.Release.Name != "" && !namePattern.MatchString(c.Release.Name) {
		errs = append(errs, fmt.Errorf("release.name %q must be a release name such as my_app (letters, digits, _)", c.Release.Name))
	}
	if c.NodeName != "" && !nodeNamePattern.MatchString(c.NodeName) {
		errs = append(errs, fmt.Errorf("node_name %q must look like name or name@host", c.NodeName))
	}
	if c.NodeName != "" && c.DistPort == "" {
		errs = append(errs, errors.New("node_name is set but dist_port is not; name the network port the node listens on for distribution"))
	}
	switch {
	case c.CookieFile != "" && c.CookieEnv != "":
		errs = append(errs, errors.New("cookie_file and cookie_env are both set; use one"))
	case c.DistPort != "" && c.CookieFile == "" && c.CookieEnv == "":
		errs = append(errs, errors.New(`dist_port is set but no cookie is: set cookie_file = "secrets/erlang.cookie" `+
			`and render it with a template from Nomad Variables (or cookie_env for a template with env = true)`))
	case c.DistPort == "" && (c.CookieFile != "" || c.CookieEnv != ""):
		errs = append(errs, errors.New("a cookie is set but dist_port is not; distribution is off without a dist_port"))
	}
	if c.CookieFile != "" && (filepath.IsAbs(c.CookieFile) || !filepath.IsLocal(c.CookieFile)) {
		errs = append(errs, fmt.Errorf("cookie_file %q must be a path inside the task directory, such as secrets/erlang.cookie", c.CookieFile))
	}
	for i, argv := range c.PreCommands {
		if len(argv) == 0 || argv[0] == "" {
			errs = append(errs, fmt.Errorf(`pre_commands[%d] is empty; write each as an argv list, such as ["eval", "MyApp.Release.migrate()"]`, i))
		} else if argv[0] == "eval" && len(argv) != 2 {
			errs = append(errs, fmt.Errorf(`pre_commands[%d]: eval takes exactly one expression, such as ["eval", "MyApp.Release.migrate()"]`, i))
		}
	}
	if c.PreCommandTimeout != "" {
		if d, err := time.ParseDuration(c.PreCommandTimeout); err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("pre_command_timeout %q must be a positive duration such as \"5m\"", c.PreCommandTimeout))
		} else if d > maxPreCommandTimeout {
			errs = append(errs, fmt.Errorf("pre_command_timeout %q is over the limit of %s; a pre-command holds the task's start, "+
				"so run longer work as a batch job", c.PreCommandTimeout, maxPreCommandTimeout))
		}
	}
	if c.HotUpgrade.Enabled {
		if c.DistPort == "" {
			errs = append(errs, errors.New("hot_upgrade is set but dist_port is not; the driver upgrades a node through distribution"))
		}
		if d, err := time.ParseDuration(c.HotUpgrade.Timeout); c.HotUpgrade.Timeout != "" && (err != nil || d <= 0) {
			errs = append(errs, fmt.Errorf("hot_upgrade.timeout %q must be a positive duration such as \"2m\"", c.HotUpgrade.Timeout))
		}
		if v := c.HotUpgrade.Variable; v != "" && !validVarPath.MatchString(v) {
			errs = append(errs, fmt.Errorf("hot_upgrade.variable %q is not a Nomad Variable path (letters, digits, -_~/)", v))
		}
	}
	if c.TLS.enabled() {
		if c.DistPort == "" {
			errs = append(errs, errors.New("tls is set but dist_port is not; TLS distribution needs distribution"))
		}
		for field, f := range map[string]string{"tls.cert_file": c.TLS.CertFile, "tls.key_file": c.TLS.KeyFile, "tls.ca_file": c.TLS.CAFile} {
			if f == "" || filepath.IsAbs(f) || !filepath.IsLocal(f) {
				errs = append(errs, fmt.Errorf("%s %q must be a path inside the task directory, such as secrets/dist.pem", field, f))
			}
		}
	}
	if c.ClusterService != "" && c.DistPort == "" {
		errs = append(errs, errors.New("cluster_service is set but dist_port is not; clustering needs distribution"))
	}
	if c.CookieEnv != "" && !envNamePattern.MatchString(c.CookieEnv) {
		errs = append(errs, fmt.Errorf("cookie_env %q must be an environment variable name", c.CookieEnv))
	}
	return errors.Join(errs...)
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
