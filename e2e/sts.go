//go:build e2e

package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// STS answers AssumeRoleWithWebIdentity on loopback for the plugin's
// sts_endpoint, and records every token it is sent. versitygw's own STS
// trusts only https issuers on public addresses, so it cannot trust the
// test cluster's Nomad; this endpoint stands in for AWS's so that a test
// can check which token the plugin read and sent. The role RootRole gets
// the S3 store's credentials; any other role gets credentials the store
// does not know, so a fetch with them is refused: either way, a fetch
// shows whose credentials signed it.
type STS struct {
	Addr string

	srv    *http.Server
	key    string
	secret string

	mu     sync.Mutex
	tokens map[string][]string // by role ARN
}

// RootRole is the role that STS exchanges for the S3 store's credentials.
const RootRole = "arn:aws:iam::123456789012:role/beam-e2e-releases"

// StartSTS starts the endpoint, handing RootRole key and secret.
func StartSTS(key, secret string) (*STS, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &STS{Addr: l.Addr().String(), key: key, secret: secret, tokens: map[string][]string{}}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(s.serve)}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

func (s *STS) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	if r.Form.Get("Action") != "AssumeRoleWithWebIdentity" {
		http.Error(w, "unsupported", http.StatusBadRequest)
		return
	}
	role := r.Form.Get("RoleArn")
	s.mu.Lock()
	s.tokens[role] = append(s.tokens[role], r.Form.Get("WebIdentityToken"))
	s.mu.Unlock()
	key, secret := "AKIDUNKNOWNROLE0", "unknown-role-secret"
	if role == RootRole {
		key, secret = s.key, s.secret
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken></SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <SubjectFromWebIdentityToken>job</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>%s/session</Arn><AssumedRoleId>AROA:session</AssumedRoleId></AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`, key, secret, time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		strings.Replace(role, ":iam::", ":sts::", 1))
}

// Tokens returns the tokens sent for role.
func (s *STS) Tokens(role string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tokens[role]...)
}

// Stop stops the endpoint.
func (s *STS) Stop() { _ = s.srv.Close() }

// stsAddr is the STS endpoint's address, or "" without one.
func (s *Stores) stsAddr() string {
	if s == nil || s.STS == nil {
		return ""
	}
	return s.STS.Addr
}
