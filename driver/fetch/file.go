package fetch

import (
	"context"
	"errors"
	"io/fs"
	"net/url"
	"os"
)

// fileSource reads file:// paths on the client.
type fileSource struct{}

func (fileSource) open(u *url.URL) (*os.File, int64, error) {
	f, err := os.Open(u.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, &PermanentError{&NotFound{Source: Redact(u.String())}}
	}
	if err != nil {
		return nil, 0, &PermanentError{err}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, permanent("%s is not a regular file", u.Path)
	}
	return f, fi.Size(), nil
}

func (s fileSource) size(_ context.Context, u *url.URL) (int64, error) {
	f, n, err := s.open(u)
	if err != nil {
		return 0, err
	}
	f.Close()
	return n, nil
}

func (s fileSource) download(ctx context.Context, u *url.URL, out *os.File, p *progressCounter) (int64, error) {
	f, _, err := s.open(u)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return copyCounting(ctx, out, f, p)
}
