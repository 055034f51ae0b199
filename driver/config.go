package driver

import (
	"errors"
	"fmt"
	"path/filepath"
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
		"allowed_users": hclspec.NewAttr("allowed_users", "list(string)", false),
		"allow_root":    hclspec.NewAttr("allow_root", "bool", false),
		"dynamic_user_min": hclspec.NewDefault(
			hclspec.NewAttr("dynamic_user_min", "number", false),
			hclspec.NewLiteral("80000"),
		),
		"dynamic_user_max": hclspec.NewDefault(
			hclspec.NewAttr("dynamic_user_max", "number", false),
			hclspec.NewLiteral("89999"),
		),
		"read_only_paths":  hclspec.NewAttr("read_only_paths", "list(string)", false),
		"read_write_paths": hclspec.NewAttr("read_write_paths", "list(string)", false),
		"max_unpacked_mb": hclspec.NewDefault(
			hclspec.NewAttr("max_unpacked_mb", "number", false),
			hclspec.NewLiteral("4096"),
		),
		"sts_endpoint": hclspec.NewAttr("sts_endpoint", "string", false),
		"sources":      namespacesSpec("sources"),
		"node_names":   namespacesSpec("node_names"),
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
		"aws_identity": hclspec.NewBlock("aws_identity", false, hclspec.NewObject(map[string]*hclspec.Spec{
			"name":     hclspec.NewAttr("name", "string", true),
			"role_arn": hclspec.NewAttr("role_arn", "string", true),
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
	// ConsulAddress is where clustering reaches Consul; empty means
	// CONSUL_HTTP_ADDR. Clustering uses the task's own Consul token only.
	// ConsulToken is the plugin's own, for its own registrations; it is
	// never used for a task.
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
	// STSEndpoint is where tasks' aws_identity tokens are exchanged for
	// their roles' credentials; empty means AWS's regional STS.
	STSEndpoint string `codec:"sts_endpoint"`
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
	// capabilities: raw_exec-level trust all the same.
	AllowRoot bool `codec:"allow_root"`
	// DynamicUserMin and DynamicUserMax are the client's dynamic workload
	// user pool (its user.dynamic_user_min and _max): with default_user =
	// "dynamic", a task's nomad-N user must come from it.
	DynamicUserMin int `codec:"dynamic_user_min"`
	DynamicUserMax int `codec:"dynamic_user_max"`
	// Isolation is "landlock" (the default): a task sees its own
	// directories and the host's system paths, read-only. "none" leaves
	// it the whole host, as raw_exec.
	Isolation string `codec:"isolation"`
	// ReadOnlyPaths are more host paths that confined tasks may read.
	ReadOnlyPaths []string `codec:"read_only_paths"`
	// ReadWritePaths are host directories that every confined task of
	// the client may also write, such as a shared log directory.
	ReadWritePaths []string `codec:"read_write_paths"`
	// Sources is the per-namespace source policy: the prefixes of the
	// release sources a namespace's tasks may fetch. Without it any
	// source goes, with the plugin's network and credentials.
	Sources *Namespaces `codec:"sources"`
	// NodeNames lists, per namespace, the node_name patterns a task may
	// take. Without it any name goes, first come first served.
	NodeNames *Namespaces `codec:"node_names"`

	policies map[string]*fetch.Policy // Sources, parsed by validate
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
	if c.DynamicUserMin == 0 && c.DynamicUserMax == 0 {
		c.DynamicUserMin, c.DynamicUserMax = 80000, 89999
	}
	if c.DynamicUserMin < 1000 || c.DynamicUserMax < c.DynamicUserMin {
		return fmt.Errorf("dynamic_user_min = %d and dynamic_user_max = %d must be a range of uids from 1000 up, as the client's user block", c.DynamicUserMin, c.DynamicUserMax)
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
	return c.validatePolicies()
}
