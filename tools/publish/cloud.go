package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"cloud.google.com/go/storage"
	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// S3 is a Store in an S3 bucket, or an S3-compatible one with Endpoint.
// Credentials come from the standard AWS chain.
type S3 struct {
	Client *s3.Client
	Bucket string
}

// NewS3 returns an S3 store with the standard AWS configuration, an
// optional endpoint and path-style addressing for S3-compatible stores.
func NewS3(ctx context.Context, bucket, endpoint string, pathStyle bool) (*S3, error) {
	c, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	client := s3.NewFromConfig(c, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
	})
	return &S3{Client: client, Bucket: bucket}, nil
}

// Exists reports whether the object is there.
func (s *S3) Exists(ctx context.Context, key string) (bool, error) {
	_, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.Bucket, Key: &key})
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("s3://%s/%s: %w", s.Bucket, key, err)
	}
	return true, nil
}

// Put uploads the object through the transfer manager (multipart for large
// tarballs).
func (s *S3) Put(ctx context.Context, key string, r io.Reader, _ int64) error {
	_, err := transfermanager.New(s.Client).UploadObject(ctx, &transfermanager.UploadObjectInput{
		Bucket: aws.String(s.Bucket), Key: aws.String(key), Body: r,
	})
	return err
}

// URL returns the s3:// source of a key.
func (s *S3) URL(key string) string { return "s3://" + s.Bucket + "/" + key }

// GCS is a Store in a Google Cloud Storage bucket, with Application Default
// Credentials; the client honours STORAGE_EMULATOR_HOST.
type GCS struct {
	Client *storage.Client
	Bucket string
}

// Exists reports whether the object is there.
func (g *GCS) Exists(ctx context.Context, key string) (bool, error) {
	_, err := g.Client.Bucket(g.Bucket).Object(key).Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("gs://%s/%s: %w", g.Bucket, key, err)
	}
	return true, nil
}

// Put uploads the object.
func (g *GCS) Put(ctx context.Context, key string, r io.Reader, _ int64) error {
	w := g.Client.Bucket(g.Bucket).Object(key).NewWriter(ctx)
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// URL returns the gs:// source of a key.
func (g *GCS) URL(key string) string { return "gs://" + g.Bucket + "/" + key }

// Open returns the Store and key prefix for a destination: s3://bucket/dir,
// gs://bucket/dir, file:///dir or a plain directory path.
func Open(ctx context.Context, dest, s3Endpoint string, s3PathStyle bool) (Store, string, error) {
	if !strings.Contains(dest, "://") {
		return Dir{Root: dest}, "", nil
	}
	u, err := url.Parse(dest)
	if err != nil {
		return nil, "", fmt.Errorf("-to %q: %w", dest, err)
	}
	prefix := strings.Trim(u.Path, "/")
	switch u.Scheme {
	case "s3":
		if u.Host == "" {
			return nil, "", fmt.Errorf("-to %q must look like s3://bucket/dist/app", dest)
		}
		s, err := NewS3(ctx, u.Host, s3Endpoint, s3PathStyle)
		return s, prefix, err
	case "gs":
		if u.Host == "" {
			return nil, "", fmt.Errorf("-to %q must look like gs://bucket/dist/app", dest)
		}
		c, err := storage.NewClient(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("cannot create a Google Cloud Storage client: %w; set up Application Default Credentials", err)
		}
		return &GCS{Client: c, Bucket: u.Host}, prefix, nil
	case "file":
		return Dir{Root: u.Path}, "", nil
	}
	return nil, "", fmt.Errorf("-to %q: use s3://bucket/dir, gs://bucket/dir or a directory", dest)
}
