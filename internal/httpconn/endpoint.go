package httpconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ErrCredentials is the error of a URL that carries user information.
var ErrCredentials = errors.New("credentials in the URL are not supported")

// Endpoint is where a server's base URL says to send requests.
type Endpoint struct {
	Addr     string      // host:port to dial, the scheme's default port when the URL has none
	Host     string      // the Host header: the URL's host, as written
	BasePath string      // escaped path prefix, without a trailing slash
	TLS      *tls.Config // for https (HTTP/1.1 only), nil for http
}

// ParseEndpoint parses a server's base URL. The URL must be absolute, http or
// https, with a host, and without a query, a fragment or credentials
// (ErrCredentials). Surrounding white space is ignored; trailing slashes are
// dropped from the path, and then stripSuffix (e.g. "/v1") when the path ends
// with it, so that a URL given with the API's version prefix is not doubled.
// The error says only what is wrong with the URL: callers prefix it with the
// backend's name and the URL.
func ParseEndpoint(rawURL, stripSuffix string) (Endpoint, error) {
	raw := strings.TrimSpace(rawURL)
	if raw == "" {
		return Endpoint{}, errors.New("missing")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Endpoint{}, err
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		if u.Scheme == "" {
			return Endpoint{}, errors.New("no scheme (want http:// or https://)")
		}
		return Endpoint{}, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Hostname() == "" {
		return Endpoint{}, errors.New("no host")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Endpoint{}, errors.New("must not have a query or a fragment")
	}
	if u.User != nil {
		return Endpoint{}, ErrCredentials
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	ep := Endpoint{
		Addr:     net.JoinHostPort(u.Hostname(), port),
		Host:     u.Host,
		BasePath: strings.TrimSuffix(strings.TrimRight(u.EscapedPath(), "/"), stripSuffix),
	}
	if scheme == "https" {
		ep.TLS = &tls.Config{ServerName: u.Hostname(), NextProtos: []string{"http/1.1"}}
	}
	return ep, nil
}
