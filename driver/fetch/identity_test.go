package fetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// stsAnswer is AssumeRoleWithWebIdentity's answer with credentials AKID.
const stsAnswer = `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>AKIDJOBROLE</AccessKeyId>
      <SecretAccessKey>secret</SecretAccessKey>
      <SessionToken>session</SessionToken>
      <Expiration>2099-01-01T00:00:00Z</Expiration>
    </Credentials>
    <SubjectFromWebIdentityToken>job</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/team-a/s</Arn><AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`

// An S3 fetch with an identity sends the job's token to STS and signs its
// request with the role's credentials, never the client's; the token is
// read again for every fetcher, as Nomad rewrites it; a refusal by STS is
// a denial that quotes neither the token nor STS's message.
func TestIdentityAssumesRole(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDCLIENT")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "client-secret")
	var tokens []string
	refuse := false
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		tokens = append(tokens, r.Form.Get("WebIdentityToken"))
		if r.Form.Get("Action") != "AssumeRoleWithWebIdentity" || r.Form.Get("RoleArn") != "arn:aws:iam::123456789012:role/team-a" {
			t.Errorf("STS got %v", r.Form)
		}
		if refuse {
			w.WriteHeader(http.StatusForbidden)
			w.Write([]byte(`<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>token claims sub=secret-claim</Message></Error></ErrorResponse>`))
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		w.Write([]byte(stsAnswer))
	}))
	defer sts.Close()
	var signed atomic.Value
	s3 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		signed.Store(r.Header.Get("Authorization"))
		w.Header().Set("Content-Length", "1234")
	}))
	defer s3.Close()

	n := 0
	id := &Identity{RoleARN: "arn:aws:iam::123456789012:role/team-a", Session: "beam-alloc",
		STSEndpoint: sts.URL, Token: func() ([]byte, error) { n++; return []byte("jwt-" + string(rune('0'+n))), nil }}
	base := New(Config{S3Endpoint: s3.URL, S3PathStyle: true, S3Region: "us-east-1"})
	for i := range 2 {
		size, err := base.WithIdentity(id).Stat(context.Background(), "s3://team-a/app.tar.gz")
		if err != nil || size != 1234 {
			t.Fatalf("fetch %d: %d, %v", i, size, err)
		}
		if a, _ := signed.Load().(string); !strings.Contains(a, "Credential=AKIDJOBROLE/") {
			t.Errorf("fetch %d signed with %q, not the role's credentials", i, a)
		}
	}
	if strings.Join(tokens, ",") != "jwt-1,jwt-2" {
		t.Errorf("STS got tokens %q, want each fetch's fresh read", tokens)
	}
	// Without an identity, the client's credentials, as before.
	if _, err := base.Stat(context.Background(), "s3://team-a/app.tar.gz"); err != nil {
		t.Fatal(err)
	}
	if a, _ := signed.Load().(string); !strings.Contains(a, "Credential=AKIDCLIENT/") {
		t.Errorf("without an identity, signed with %q", a)
	}

	refuse = true
	_, err := base.WithIdentity(id).Stat(context.Background(), "s3://team-a/app.tar.gz")
	if !errors.Is(err, ErrDenied) || !strings.Contains(err.Error(), "InvalidIdentityToken") ||
		strings.Contains(err.Error(), "secret-claim") || strings.Contains(err.Error(), "jwt-") {
		t.Errorf("refused exchange: %v", err)
	}
	if !ValidRoleARN(id.RoleARN) || ValidRoleARN("arn:aws:iam::1:role/x") || ValidRoleARN("role/x") {
		t.Error("ValidRoleARN")
	}
}
