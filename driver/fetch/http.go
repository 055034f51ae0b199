package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// httpSource downloads http:// and https:// URLs.
type httpSource struct{ client *http.Client }

func newHTTPSource() *httpSource {
	return &httpSource{client: &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		ResponseHeaderTimeout: 30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		IdleConnTimeout:       30 * time.Second,
	}}}
}

// size is learned from the response itself.
func (*httpSource) size(context.Context, *url.URL) (int64, error) { return -1, nil }

func (s *httpSource) download(ctx context.Context, u *url.URL, out *sink) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, &PermanentError{err}
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, scrub(err, u.String())
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return 0, &PermanentError{&NotFound{Source: Redact(u.String())}}
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden:
		return 0, denied("access denied (%s); check the URL's credentials or the server's rules", resp.Status)
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return 0, fmt.Errorf("server answered %s", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return 0, permanent("server answered %s", resp.Status)
	}
	if resp.ContentLength > out.lim.max {
		return 0, out.lim.over(resp.ContentLength)
	}
	out.p.setTotal(resp.ContentLength)
	n, err := copyTo(ctx, out, resp.Body)
	if err != nil {
		return n, err
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("got %d of %d bytes; the download was cut short", n, resp.ContentLength)
	}
	return n, nil
}

// scrub rewrites an error from net/http, which quotes the full URL, so that
// it quotes the redacted one.
func scrub(err error, source string) error {
	// A refusal of the source policy, at a dial or a redirect, names no
	// URL of the request and stays a permanent refusal.
	var re *refusedError
	if errors.As(err, &re) {
		return &PermanentError{re}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s", strings.ReplaceAll(ue.Err.Error(), source, Redact(source)))
	}
	return err
}
