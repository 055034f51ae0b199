package fetch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
)

// Policy is what one caller may fetch: a namespace's part of the plugin's
// sources block. The fetcher runs as root, on the client's network and
// with its cloud credentials, so without a policy a job could fetch
// another team's private release, or use the plugin as a proxy to the
// client's own services.
type Policy struct {
	// Where names the policy in errors, such as
	// `sources { namespace "team-a" }`.
	Where string
	// Allow lists the source prefixes the caller may fetch, such as
	// "s3://team-a-releases/", "https://artifacts.example.com/team-a/"
	// or "file:///srv/releases/team-a/". See ParsePrefix.
	Allow []Prefix
}

// Prefix is one allowed source prefix, parsed.
type Prefix struct {
	raw    string
	scheme string
	host   string // lower case, without a default port; the bucket for s3 and gs
	path   string // always starts with "/"
}

func (p Prefix) String() string { return p.raw }

// ParsePrefix parses an allowed source prefix: a URL of a scheme the
// fetcher supports, with a host (a bucket for s3:// and gs://) or, for
// file://, an absolute path. A prefix that does not end in "/" allows the
// object it names and what lies below it as a directory.
func ParsePrefix(s string) (Prefix, error) {
	if strings.HasPrefix(s, "/") {
		s = "file://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return Prefix{}, fmt.Errorf("%q is not a source prefix such as \"s3://bucket/prefix/\" or \"https://host/path/\"", s)
	}
	if !slices.Contains(Schemes, u.Scheme) {
		return Prefix{}, fmt.Errorf("%q: scheme %q is not one of %s", s, u.Scheme, strings.Join(Schemes, ", "))
	}
	if u.Scheme != "file" && u.Host == "" {
		return Prefix{}, fmt.Errorf("%q names no host or bucket", s)
	}
	p := Prefix{raw: s, scheme: u.Scheme, host: normHost(u), path: u.EscapedPath()}
	if p.path == "" {
		p.path = "/"
	}
	if dotted(p.path) {
		return Prefix{}, fmt.Errorf("%q holds a . or .. segment or an encoded slash or dot", s)
	}
	return p, nil
}

// allows reports whether the parsed source u is below p.
func (p Prefix) allows(u *url.URL) bool {
	if u.Scheme != p.scheme || normHost(u) != p.host {
		return false
	}
	path := u.EscapedPath()
	if strings.HasSuffix(p.path, "/") {
		return strings.HasPrefix(path, p.path)
	}
	// An object's prefix allows its .sha256 sidecar too.
	return path == p.path || path == p.path+".sha256" || strings.HasPrefix(path, p.path+"/")
}

// normHost is u's host in lower case, without the scheme's default port.
// A bucket (s3, gs) keeps its case: the store reads it as written, and
// older S3 buckets may hold capitals.
func normHost(u *url.URL) string {
	h := strings.ToLower(u.Host)
	if u.Scheme == "s3" || u.Scheme == "gs" {
		h = u.Host
	}
	switch {
	case u.Scheme == "https" && strings.HasSuffix(h, ":443"):
		h = strings.TrimSuffix(h, ":443")
	case u.Scheme == "http" && strings.HasSuffix(h, ":80"):
		h = strings.TrimSuffix(h, ":80")
	case u.Scheme == "file" && h == "localhost":
		h = ""
	}
	return h
}

// dotted reports whether an escaped path holds a segment that a server
// or store may resolve to another path: . or .., or an encoded slash,
// backslash or dot that could make one.
func dotted(p string) bool {
	l := strings.ToLower(p)
	if strings.Contains(l, "%2f") || strings.Contains(l, "%5c") || strings.Contains(l, "%2e") || strings.Contains(l, `\`) {
		return true
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// ErrRefused matches a source or an address that the policy refuses.
var ErrRefused = errors.New("refused by the source policy")

type refusedError struct{ msg string }

func (e *refusedError) Error() string        { return e.msg }
func (e *refusedError) Is(target error) bool { return target == ErrRefused }

func refusedf(format string, args ...any) error {
	return &PermanentError{&refusedError{fmt.Sprintf(format, args...)}}
}

// Check refuses a source that no prefix of the policy allows, before any
// request is made.
func (p *Policy) Check(source string) error {
	if p == nil {
		return nil
	}
	s := source
	if strings.HasPrefix(s, "/") {
		s = "file://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return permanent("release.source %q is not a valid URL; percent-encode special characters in it", Redact(source))
	}
	if dotted(u.EscapedPath()) {
		return refusedf("release.source %s holds a . or .. segment or an encoded slash or dot, which the source policy (%s) does not allow; "+
			"give the object's plain path", Redact(source), p.Where)
	}
	for _, a := range p.Allow {
		if a.allows(u) {
			return nil
		}
	}
	allowed := "nothing"
	if len(p.Allow) > 0 {
		var l []string
		for _, a := range p.Allow {
			l = append(l, a.raw)
		}
		allowed = strings.Join(l, ", ")
	}
	return refusedf("release.source %s is outside the plugin's source policy, %s, which allows %s; "+
		"publish the release there, or ask the operator to add its prefix", Redact(source), p.Where, allowed)
}

// named returns the host:port addresses that the policy's http and https
// prefixes name: the only ones that may be loopback, link-local or this
// client's own addresses.
func (p *Policy) named() map[string]bool {
	out := map[string]bool{}
	for _, a := range p.Allow {
		if a.scheme == "http" || a.scheme == "https" {
			out[withPort(a.host, a.scheme)] = true
		}
	}
	return out
}

// withPort returns host:port for a URL host, with the scheme's default
// port when it has none.
func withPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return strings.ToLower(host)
	}
	port := "80"
	if scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(strings.Trim(strings.ToLower(host), "[]"), port)
}

// guard checks every address the fetcher dials for a policy: a name the
// policy's prefixes do not give literally may not resolve to a loopback,
// link-local, unspecified or multicast address, nor to one of this
// client's own addresses (where the Nomad and Consul agents listen), nor
// to one of deny. Redirects are dialled through it too.
type guard struct {
	named  map[string]bool
	exempt map[string]bool // proxies, host:port
	deny   []netip.Addr
	dialer net.Dialer
}

func (g *guard) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if g.named[strings.ToLower(addr)] || g.exempt[strings.ToLower(addr)] {
		return g.dialer.DialContext(ctx, network, addr)
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, err
	}
	for _, ip := range ips {
		if why := g.forbidden(ip.Unmap()); why != "" {
			return nil, refusedf("the source policy refuses to connect to %s, %s; name it in an allowed prefix to allow it", host, why)
		}
	}
	var last error
	for _, ip := range ips {
		// The address checked is the address dialled: no second lookup
		// that could answer otherwise.
		c, err := g.dialer.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}

// metadata are cloud metadata services outside the link-local range:
// AWS's over IPv6 and Alibaba's.
var metadata = []netip.Addr{netip.MustParseAddr("fd00:ec2::254"), netip.MustParseAddr("100.100.100.200")}

// forbidden says why the policy may not reach ip, or "".
func (g *guard) forbidden(ip netip.Addr) string {
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "a link-local address"
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "not a host's address"
	case slices.Contains(g.deny, ip):
		return "an address of an agent"
	case slices.Contains(metadata, ip):
		return "a cloud metadata service"
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if own, ok := netip.AddrFromSlice(n.IP); ok && own.Unmap() == ip {
					return "one of this client's own addresses"
				}
			}
		}
	}
	return ""
}

// guardedHTTP returns an http source whose every connection, redirects
// included, is checked by a guard for p.
func guardedHTTP(p *Policy, deny []netip.Addr) *httpSource {
	g := &guard{named: p.named(), exempt: proxies(), deny: deny, dialer: net.Dialer{Timeout: 30 * time.Second}}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           g.dial,
		ResponseHeaderTimeout: 30 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		IdleConnTimeout:       30 * time.Second,
	}
	return &httpSource{client: &http.Client{Transport: t, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return permanent("stopped after 10 redirects")
		}
		if req.URL.Scheme != "https" && (req.URL.Scheme != "http" || via[len(via)-1].URL.Scheme == "https") {
			return refusedf("the source policy refuses a redirect from %s to a %s:// URL", via[len(via)-1].URL.Scheme, req.URL.Scheme)
		}
		// A redirect goes where a source could: within the prefixes.
		// Whoever can publish under an allowed prefix must not be able to
		// send the plugin anywhere else (a CDN is one more prefix).
		if err := p.Check(req.URL.String()); err != nil {
			return refusedf("the source policy refuses a redirect to %s, outside %s; add its prefix to allow it",
				Redact(req.URL.String()), p.Where)
		}
		return nil
	}}}
}

// proxies returns the host:port of the proxies the environment sets: the
// operator's, dialled whatever their address.
func proxies() map[string]bool {
	out := map[string]bool{}
	for _, k := range []string{"HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"} {
		if u, err := url.Parse(os.Getenv(k)); err == nil && u.Host != "" {
			out[withPort(u.Host, u.Scheme)] = true
		}
	}
	return out
}

// WithPolicy returns a fetcher that shares f's stores but fetches only
// what p allows, and dials http and https sources through a guard; deny
// lists more addresses that only a prefix naming them reaches (the
// agents'). A nil p is no policy: f itself.
func (f *Fetcher) WithPolicy(p *Policy, deny []netip.Addr) *Fetcher {
	if p == nil {
		return f
	}
	c := f.withSource(guardedHTTP(p, deny), "http", "https")
	c.policy = p
	return c
}
