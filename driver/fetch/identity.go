package fetch

import (
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Identity is a workload identity that S3 fetches exchange, with
// sts:AssumeRoleWithWebIdentity, for the credentials of a role of the
// job's own, instead of using the client's: a job fetches what its role
// may read, whatever the node's role may.
type Identity struct {
	// RoleARN is the role to assume.
	RoleARN string
	// Session names the role session, for the store's audit log.
	Session string
	// Token returns the identity's JWT. It is called for every exchange:
	// Nomad rewrites the token file at half its TTL.
	Token func() ([]byte, error)
	// STSEndpoint, when set, is where the exchange goes instead of AWS's
	// regional STS endpoint.
	STSEndpoint string
}

// roleARN is the shape of an IAM role ARN, in any partition.
var roleARN = regexp.MustCompile(`^arn:[a-z-]+:iam::[0-9]{12}:role/[\w+=,.@/-]{1,512}$`)

// ValidRoleARN reports whether s looks like an IAM role ARN.
func ValidRoleARN(s string) bool { return roleARN.MatchString(s) }

type tokenFunc func() ([]byte, error)

func (f tokenFunc) GetIdentityToken() ([]byte, error) { return f() }

// provider returns the credentials the identity is exchanged for, cached
// until they expire, through an STS client made from base.
func (id *Identity) provider(base aws.Config) aws.CredentialsProvider {
	client := sts.NewFromConfig(base, func(o *sts.Options) {
		if id.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(id.STSEndpoint)
		}
	})
	p := stscreds.NewWebIdentityRoleProvider(client, id.RoleARN, tokenFunc(id.Token), func(o *stscreds.WebIdentityRoleOptions) {
		o.RoleSessionName = id.Session
	})
	return aws.NewCredentialsCache(p)
}

// WithIdentity returns a fetcher that shares f's other stores but fetches
// s3:// sources with id's role. A nil id is f itself.
func (f *Fetcher) WithIdentity(id *Identity) *Fetcher {
	if id == nil {
		return f
	}
	return f.withSource(&s3Source{cfg: f.cfg, identity: id}, "s3")
}
