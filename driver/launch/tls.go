package launch

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nomad-driver-beam/nomad-driver-beam/driver/taskdir"
)

// TLS is the node's certificate, key and CA for TLS distribution, as
// absolute paths, or as contents (PEM) to give the node in its own copies.
type TLS struct {
	Cert, Key, CA string
	// CertPEM, KeyPEM and CAPEM, when set, are written to the node's
	// private directory, owned by the task's user, and used instead of
	// the paths: Nomad renders templates as root, and a key that only
	// root can read is of no use to a node that runs as nobody.
	CertPEM, KeyPEM, CAPEM []byte
}

// writeSSLDistOpt writes the ssl_dist_optfile for mutual TLS: both ends
// verify the peer against the CA, and a server refuses a client without a
// certificate. Clients also check that the server's certificate names the
// host part of the node name, so certificates must carry it (the IP Nomad
// assigns, or the host of node_name) as a subject alternative name. It
// returns the file's path.
func writeSSLDistOpt(out *os.Root, dir string, t *TLS, owner taskdir.Owner) (string, error) {
	if t.CertPEM != nil {
		own := *t
		for _, f := range []struct {
			name string
			data []byte
			path *string
		}{{"dist.crt", t.CertPEM, &own.Cert}, {"dist.key", t.KeyPEM, &own.Key}, {"ca.crt", t.CAPEM, &own.CA}} {
			if err := taskdir.WriteFile(out, f.name, f.data, 0o400, owner); err != nil {
				return "", fmt.Errorf("launch: %w", err)
			}
			*f.path = filepath.Join(dir, f.name)
		}
		t = &own
	}
	for _, f := range []string{t.Cert, t.Key, t.CA} {
		if _, err := os.Stat(f); err != nil {
			return "", fmt.Errorf("TLS distribution: %s cannot be read (%v); render it into the task's secrets/ with a template", filepath.Base(f), err)
		}
	}
	if err := taskdir.WriteFile(out, "ssl_dist.conf", SSLDistOpts(t), 0o600, owner); err != nil {
		return "", fmt.Errorf("launch: %w", err)
	}
	return filepath.Join(dir, "ssl_dist.conf"), nil
}

// SSLDistOpts returns the contents of an ssl_dist_optfile for t.
func SSLDistOpts(t *TLS) []byte {
	return []byte(fmt.Sprintf(`[{server, [{certfile, %s}, {keyfile, %s}, {cacertfile, %s},
           {verify, verify_peer}, {fail_if_no_peer_cert, true},
           {secure_renegotiate, true}]},
 {client, [{certfile, %s}, {keyfile, %s}, {cacertfile, %s},
           {verify, verify_peer}, {secure_renegotiate, true}]}].
`, q(t.Cert), q(t.Key), q(t.CA), q(t.Cert), q(t.Key), q(t.CA)))
}

// q quotes a path as an Erlang string.
func q(s string) string { return strconv.Quote(s) }

// hasSSL reports whether a release carries the ssl application, which TLS
// distribution loads at boot.
func hasSSL(root string) bool {
	m, _ := filepath.Glob(filepath.Join(root, "lib", "ssl-*"))
	return len(m) > 0
}
