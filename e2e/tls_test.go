//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pki is a test CA and one certificate it signed, as PEM.
type pki struct {
	caPEM, certPEM, keyPEM string
}

// newPKI makes a CA and a certificate for both ends of distribution.
func newPKI(t *testing.T, name string) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name + " CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: name + " node"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		// OTP checks the host part of the node name against DNS names,
		// even when it is an IP address.
		DNSNames: []string{"localhost", "127.0.0.1"},
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	enc := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	return pki{caPEM: enc("CERTIFICATE", caDER), certPEM: enc("CERTIFICATE", leafDER), keyPEM: enc("PRIVATE KEY", keyDER)}
}

// TestTLSDistribution runs two nodes with mutual TLS distribution and
// checks that they cluster (the driver's control calls run over TLS), that
// the release's own remote tooling still works, and that three kinds of
// peer are refused: one without a certificate, one with a certificate from
// another CA, and one over plain TCP. A peer with the right certificate is
// accepted, which shows the refusals are for the right reason.
func TestTLSDistribution(t *testing.T) {
	const tarball = "hello_ex-0.1.0.tar.gz"
	good, rogue := newPKI(t, "cluster"), newPKI(t, "rogue")
	id := uniqueJob(t, "tls")
	j := submitJobWith(t, "beam.nomad.hcl", id, map[string]string{
		"task":            "hello_ex",
		"source":          releases.URL + "/" + tarball,
		"sha256":          releases.SHA256(t, tarball),
		"count":           "2",
		"tls":             "true",
		"cluster_service": id + "-dist",
		// Under TLS each beam-health is a client VM; TestHotUpgradeTLS
		// covers it.
		"beam_check": "false",
	}, map[string]string{"tls_cert": good.certPEM, "tls_key": good.keyPEM, "tls_ca": good.caPEM})
	j.Alloc = j.waitAlloc("running", 3*time.Minute)

	// Clustering (the driver's control channel) and `bin/hello_ex rpc`
	// (the release's tooling) both work under mTLS.
	if leaks := watchCmdlines(j.Cookie, func() { waitCluster(t, j, 2, "") }); len(leaks) > 0 {
		t.Errorf("the cookie is on a command line under TLS:\n%s", strings.Join(leaks, "\n"))
	}
	target := nodeName(t, j.runningAllocs(2)[0])

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".erlang.cookie"), []byte(j.Cookie), 0o400); err != nil {
		t.Fatal(err)
	}
	optfile := func(name, client string) string {
		return write(name, fmt.Sprintf("[{server, []}, {client, [%s]}].\n", client))
	}
	ca, cert, key := write("ca.pem", good.caPEM), write("cert.pem", good.certPEM), write("key.pem", good.keyPEM)
	rcert, rkey := write("rogue.pem", rogue.certPEM), write("rogue.key", rogue.keyPEM)
	common := fmt.Sprintf(`{cacertfile, %q}, {verify, verify_peer}`, ca)

	probes := []struct {
		name string
		tls  string // ssl_dist_optfile, or "" for plain TCP
		want string
	}{
		{"right certificate", optfile("good.conf", fmt.Sprintf(`{certfile, %q}, {keyfile, %q}, %s`, cert, key, common)), "pong"},
		{"no certificate", optfile("none.conf", common), "pang"},
		{"certificate from another CA", optfile("rogue.conf", fmt.Sprintf(`{certfile, %q}, {keyfile, %q}, %s`, rcert, rkey, common)), "pang"},
		{"plain TCP", "", "pang"},
	}
	for i, p := range probes {
		t.Run(p.name, func(t *testing.T) {
			if got := probe(t, home, "probe"+strconv.Itoa(i), target, p.tls); got != p.want {
				t.Fatalf("a peer with %s got %q from %s, want %s", p.name, got, target, p.want)
			}
		})
	}
}

// probe starts a hidden VM from the host's Erlang that pings node, over TLS
// with the given ssl_dist_optfile or over plain TCP, and returns pong or
// pang.
func probe(t *testing.T, home, name, node, optfile string) string {
	t.Helper()
	args := []string{"-name", name + "@127.0.0.1", "-hidden", "-noshell", "-noinput",
		"-start_epmd", "false", "-dist_listen", "false"}
	if optfile != "" {
		args = append(args, "-proto_dist", "inet_tls", "-ssl_dist_optfile", optfile)
	}
	args = append(args, "-eval", fmt.Sprintf(`io:format("~p~n", [net_adm:ping('%s')]), halt().`, node))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "erl", args...)
	cmd.Dir = home // where a crash dump would go
	cmd.Env = append(os.Environ(), "HOME="+home, "ERL_EPMD_PORT="+strconv.Itoa(cluster.EPMDPort))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("probe: %v\n%s", err, out)
	}
	// TLS alerts may be logged after the answer: look for it among them.
	for _, w := range strings.Fields(string(out)) {
		if w == "pong" || w == "pang" {
			return w
		}
	}
	t.Fatalf("probe printed neither pong nor pang:\n%s", out)
	return ""
}

// TestHotUpgradeTLS hot-upgrades a node that runs mutual TLS distribution,
// where every control call is a short-lived client VM with the node's TLS
// options, and checks the beam-health script check through the same path.
func TestHotUpgradeTLS(t *testing.T) {
	const v1, v2 = "hello_erl-0.1.0.tar.gz", "hello_erl-0.2.0.tar.gz"
	good := newPKI(t, "cluster")
	j := submitJobWith(t, "beam.nomad.hcl", uniqueJob(t, "hottls"), map[string]string{
		"task": "hello_erl", "source": releases.URL + "/" + v1, "sha256": releases.SHA256(t, v1),
		"tls": "true", "hot": "true",
	}, map[string]string{"tls_cert": good.certPEM, "tls_key": good.keyPEM, "tls_ca": good.caPEM})
	j.Alloc = j.waitAlloc("running", 3*time.Minute)
	port := j.port("http")
	pid, _ := pidCount(t, waitHTTP(t, port, "/", 60*time.Second))
	err := waitFor(60*time.Second, func() error {
		s, out, err := beamCheck(j)
		if err != nil || s != "passing" {
			return fmt.Errorf("beam check %s %q %v", s, out, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("beam-health under TLS: %v", err)
	}

	asked := time.Now()
	setHot(t, j.ID, map[string]hotTarget{j.Alloc: target(t, "0.2.0", v2)})
	ev := j.waitHot("node", "0.2.0", asked.Add(-time.Second))
	if ev.Outcome != "succeeded" {
		t.Fatalf("hot upgrade under TLS: %s: %s", ev.Outcome, ev.Message)
	}
	t.Logf("event: %s", ev.Message)
	body := waitHTTP(t, port, "/", 10*time.Second)
	if p, _ := pidCount(t, body); p != pid || !strings.Contains(body, "hello_erl 0.2.0") {
		t.Errorf("after the upgrade: %q, want 0.2.0 from pid %d", body, pid)
	}
}
