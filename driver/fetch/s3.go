package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// s3Source downloads s3://bucket/key with the standard AWS credential
// chain, through the SDK's transfer manager (concurrent ranged parts).
type s3Source struct {
	cfg Config
	// identity, when set, replaces the client's credentials; see
	// Fetcher.WithIdentity.
	identity *Identity

	once   sync.Once
	client *s3.Client
	err    error
}

func newS3Source(cfg Config) *s3Source { return &s3Source{cfg: cfg} }

func (s *s3Source) s3(ctx context.Context) (*s3.Client, error) {
	s.once.Do(func() {
		opts := []func(*config.LoadOptions) error{}
		if s.cfg.S3Region != "" {
			opts = append(opts, config.WithRegion(s.cfg.S3Region))
		}
		c, err := config.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			s.err = permanent("AWS configuration: %v", err)
			return
		}
		if c.Region == "" {
			c.Region = "us-east-1"
		}
		if s.identity != nil {
			c.Credentials = s.identity.provider(c)
		}
		s.client = s3.NewFromConfig(c, func(o *s3.Options) {
			if s.cfg.S3Endpoint != "" {
				o.BaseEndpoint = aws.String(s.cfg.S3Endpoint)
			}
			o.UsePathStyle = s.cfg.S3PathStyle
		})
	})
	return s.client, s.err
}

// target returns the client, bucket and key for an s3:// URL.
func (s *s3Source) target(ctx context.Context, u *url.URL) (*s3.Client, string, string, error) {
	c, err := s.s3(ctx)
	if err != nil {
		return nil, "", "", err
	}
	key := strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || key == "" {
		return nil, "", "", permanent("release.source %q must look like s3://bucket/path/to/app.tar.gz", Redact(u.String()))
	}
	return c, u.Host, key, nil
}

func (s *s3Source) size(ctx context.Context, u *url.URL) (int64, error) {
	c, bucket, key, err := s.target(ctx, u)
	if err != nil {
		return 0, err
	}
	out, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		return 0, s3Error(u, err)
	}
	return aws.ToInt64(out.ContentLength), nil
}

func (s *s3Source) download(ctx context.Context, u *url.URL, out *sink) (int64, error) {
	c, bucket, key, err := s.target(ctx, u)
	if err != nil {
		return 0, err
	}
	tm := transfermanager.New(c)
	res, err := tm.DownloadObject(ctx, &transfermanager.DownloadObjectInput{
		Bucket:   &bucket,
		Key:      &key,
		WriterAt: out,
	})
	if err != nil {
		return 0, s3Error(u, err)
	}
	return aws.ToInt64(res.ContentLength), nil
}

// stsReason is the STS error code of a failed exchange, or a short
// reason: never the whole error, which may quote the token's claims.
func stsReason(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return fmt.Sprintf("STS answered %d", re.HTTPStatusCode())
	}
	if strings.Contains(err.Error(), "identity token") || strings.Contains(err.Error(), "unable to read") {
		return "the token could not be read"
	}
	return "STS could not be reached"
}

// s3Error sorts an S3 failure into permanent (missing object or bucket,
// denied access, no credentials) or transient.
func s3Error(u *url.URL, err error) error {
	if strings.Contains(err.Error(), "AssumeRoleWithWebIdentity") {
		return denied("the job's workload identity could not assume its role for %s (%s); check aws_identity.role_arn "+
			"and the role's trust policy for the Nomad issuer and audience", Redact(u.String()), stsReason(err))
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch code := re.HTTPStatusCode(); {
		case code == 404:
			return &PermanentError{&NotFound{Source: Redact(u.String())}}
		case code == 401 || code == 403:
			return denied("access to %s denied (%d); check the client's AWS credentials and the bucket policy", Redact(u.String()), code)
		case code >= 500 || code == 408 || code == 429:
			return fmt.Errorf("S3 answered %d", code)
		case code >= 300:
			return permanent("S3 answered %d for %s: %v", code, Redact(u.String()), err)
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchKey", "NoSuchBucket", "NotFound":
			return &PermanentError{&NotFound{Source: Redact(u.String())}}
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken":
			return denied("access to %s denied (%s); check the client's AWS credentials and the bucket policy", Redact(u.String()), ae.ErrorCode())
		}
		return fmt.Errorf("S3: %s", ae.ErrorCode())
	}
	if strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "no EC2 IMDS role") {
		return permanent("no AWS credentials for %s: give the Nomad client AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, or an instance role", Redact(u.String()))
	}
	return err
}
