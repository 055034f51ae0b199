package fetch

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"sync"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
)

// gcsSource downloads gs://bucket/object with Application Default
// Credentials. The client library honours STORAGE_EMULATOR_HOST.
type gcsSource struct {
	once   sync.Once
	client *storage.Client
	err    error
}

func (s *gcsSource) gcs() (*storage.Client, error) {
	s.once.Do(func() {
		s.client, s.err = storage.NewClient(context.Background())
		if s.err != nil {
			s.err = permanent("Google Cloud Storage client: %v; set up Application Default Credentials on the client", s.err)
		}
	})
	return s.client, s.err
}

func (s *gcsSource) object(u *url.URL) (*storage.ObjectHandle, error) {
	c, err := s.gcs()
	if err != nil {
		return nil, err
	}
	name := strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || name == "" {
		return nil, permanent("release.source %q must look like gs://bucket/path/to/app.tar.gz", Redact(u.String()))
	}
	return c.Bucket(u.Host).Object(name), nil
}

func (s *gcsSource) size(ctx context.Context, u *url.URL) (int64, error) {
	o, err := s.object(u)
	if err != nil {
		return 0, err
	}
	attrs, err := o.Attrs(ctx)
	if err != nil {
		return 0, gcsError(u, err)
	}
	return attrs.Size, nil
}

func (s *gcsSource) download(ctx context.Context, u *url.URL, out *sink) (int64, error) {
	o, err := s.object(u)
	if err != nil {
		return 0, err
	}
	r, err := o.NewReader(ctx)
	if err != nil {
		return 0, gcsError(u, err)
	}
	defer r.Close()
	if n := r.Attrs.Size; n > out.lim.max {
		return 0, out.lim.over(n)
	}
	return copyTo(ctx, out, r)
}

func gcsError(u *url.URL, err error) error {
	if errors.Is(err, storage.ErrObjectNotExist) || errors.Is(err, storage.ErrBucketNotExist) {
		return &PermanentError{&NotFound{Source: Redact(u.String())}}
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		switch {
		case ge.Code == 404:
			return &PermanentError{&NotFound{Source: Redact(u.String())}}
		case ge.Code == 401 || ge.Code == 403:
			return denied("access to %s denied (%d); check the client's Google credentials and the bucket's IAM", Redact(u.String()), ge.Code)
		case ge.Code >= 400 && ge.Code < 500 && ge.Code != 408 && ge.Code != 429:
			return permanent("GCS answered %d for %s: %s", ge.Code, Redact(u.String()), ge.Message)
		}
	}
	return err
}
