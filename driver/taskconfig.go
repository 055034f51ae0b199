package driver

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/fetch"
)

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
	// AWSIdentity fetches s3:// sources, hot-upgrade targets included,
	// with a role of the job's own, assumed with one of the task's
	// workload identities, instead of the client's credentials.
	AWSIdentity AWSIdentityConfig `codec:"aws_identity"`
}

// AWSIdentityConfig names a workload identity of the task (an identity
// block with file = true, whose token Nomad writes to
// secrets/nomad_NAME.jwt) and the IAM role it is exchanged for.
type AWSIdentityConfig struct {
	Name    string `codec:"name"`
	RoleARN string `codec:"role_arn"`
}

// identityName is what a workload identity's name may be here: it names
// the token's file.
var identityName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

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
	if c.CookieFile != "" && !taskFile(c.CookieFile) {
		errs = append(errs, fmt.Errorf("cookie_file %q must be a path in the task's secrets/ or local/, such as secrets/erlang.cookie", c.CookieFile))
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
			if f == "" || !taskFile(f) {
				errs = append(errs, fmt.Errorf("%s %q must be a path in the task's secrets/ or local/, such as secrets/dist.pem", field, f))
			}
		}
	}
	if a := c.AWSIdentity; a.Name != "" || a.RoleARN != "" {
		if !identityName.MatchString(a.Name) {
			errs = append(errs, fmt.Errorf("aws_identity.name %q must name one of the task's identity blocks (letters, digits, _ and -), "+
				"such as \"aws\" for identity { name = \"aws\", aud = [\"sts.amazonaws.com\"], file = true }", a.Name))
		}
		if !fetch.ValidRoleARN(a.RoleARN) {
			errs = append(errs, fmt.Errorf("aws_identity.role_arn %q must be an IAM role ARN, such as arn:aws:iam::123456789012:role/releases", a.RoleARN))
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

// taskFile reports whether p names a file the task itself may give the
// driver: in the task's secrets/ or local/, where templates render. Never
// private/, where Nomad keeps what the task must not read (its Vault token
// with disable_file, say), nor anything else of the task directory. The
// driver reads the file as root, through no link (taskdir.ReadFile).
func taskFile(p string) bool {
	if filepath.IsAbs(p) || !filepath.IsLocal(p) {
		return false
	}
	first, rest, _ := strings.Cut(filepath.ToSlash(filepath.Clean(p)), "/")
	return (first == "secrets" || first == "local") && rest != ""
}
