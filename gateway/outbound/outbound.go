// Package outbound is the HTTP client services use to call other servers:
// an allow-list of URL prefixes checked before any connection is made, a
// timeout over the whole call, a bound on the response body, and a transport
// with bounded connections. It knows nothing about Lua; scripting binds it.
//
// A call goes out only when its URL, and the URL of every redirect it
// follows, is under one of the policy's prefixes. A prefix is compared by
// its parts, not as text: the scheme, the host (case-insensitive) and the
// port (80 or 443 when not written) must be equal, and the path must be the
// prefix's path or go on below it at a "/" (a prefix ending in "/" matches
// paths that start with it). So `https://api.example.com/v1` allows
// `https://api.example.com/v1` and `https://api.example.com/v1/users?id=3`,
// but not `https://api.example.com/v10`, `https://api.example.com.evil.net/`
// or `https://api.example.com@evil/`. A URL with userinfo, or whose path
// has a "." or ".." segment (written plainly or percent-encoded), is never
// allowed.
//
// Bounds, per [Client]:
//
//	the whole call (connect, TLS, redirects, body)  Policy.Timeout (default 5s); Request.Timeout may shorten it
//	the response body                               Policy.MaxResponseBytes (default 1 MiB), after decompression
//	the response headers                            64 KiB
//	redirects followed                              5, each one checked against the allow-list
//	connections to one host (busy and idle)         64 (MaxConnsPerHost); a call past it waits, within its timeout
//	idle connections kept                           64 in all and per host, closed after 30s unused
//
// No proxy is taken from the environment and no cookies are kept between
// calls.
package outbound

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults used where a Policy field is zero. They equal the config
// package's DefaultHTTPTimeout and DefaultMaxResponseBytes.
const (
	DefaultTimeout          = 5 * time.Second
	DefaultMaxResponseBytes = 1 << 20
)

// Bounds of the transport every Client has.
const (
	// MaxRedirects is the number of redirects one call follows.
	MaxRedirects = 5
	// MaxConnsPerHost bounds the connections (dialing, busy and idle) to
	// one host; a call past it waits for one to be free, within its timeout.
	MaxConnsPerHost = 64
	// MaxIdleConns bounds the idle connections kept, all hosts together.
	MaxIdleConns = 64
	// MaxIdleConnsPerHost bounds the idle connections kept to one host:
	// as many as may be busy, so that a burst's connections are reused
	// rather than closed and dialled again.
	MaxIdleConnsPerHost = MaxConnsPerHost
	// IdleConnTimeout is how long an idle connection is kept.
	IdleConnTimeout = 30 * time.Second
	// MaxResponseHeaderBytes bounds a response's status line and headers.
	MaxResponseHeaderBytes = 64 << 10
)

// RefusedHost is the host an Observer is given for a call refused before
// it started: a URL that is invalid or not allowed. (Refused URLs are not
// reported by their host so that a metric labelled with it stays bounded
// by the allow-list.)
const RefusedHost = "(refused)"

// The kinds of failure, reachable with errors.Is on what Do returns.
var (
	// ErrNotAllowed: the URL, or a redirect's target, is not under any
	// prefix of the allow-list (or has userinfo or dot segments).
	ErrNotAllowed = errors.New("not allowed")
	// ErrInvalid: the request is malformed (URL, method, header, timeout)
	// or, from Validate, the policy is.
	ErrInvalid = errors.New("invalid")
	// ErrTimeout: the call took longer than its timeout.
	ErrTimeout = errors.New("timed out")
	// ErrTooLarge: the response body is larger than MaxResponseBytes.
	ErrTooLarge = errors.New("response too large")
	// ErrTooManyRedirects: the call was redirected more than MaxRedirects
	// times.
	ErrTooManyRedirects = errors.New("too many redirects")
)

// Policy is what calls may do. Its fields are those of config.HTTP, in the
// same order, so that outbound.Policy(endpoint.HTTP) converts.
type Policy struct {
	// Allow holds absolute http or https URL prefixes; a call's URL must
	// be under one of them. Empty: nothing is allowed.
	Allow []string
	// Timeout bounds one call, redirects and the body read included
	// (DefaultTimeout when zero).
	Timeout time.Duration
	// MaxResponseBytes bounds the response body a call reads
	// (DefaultMaxResponseBytes when zero).
	MaxResponseBytes int64
}

// Validate reports the first Allow entry that is not an absolute http or
// https URL prefix with a host (and no userinfo, query or fragment), and
// negative bounds. The error wraps ErrInvalid and names the entry.
func (p Policy) Validate() error {
	for i, a := range p.Allow {
		if _, err := parsePrefix(a); err != nil {
			return fmt.Errorf("http allow[%d] %q: %w: %w", i, a, ErrInvalid, err)
		}
	}
	if p.Timeout < 0 {
		return fmt.Errorf("http timeout %s: %w: must not be negative", p.Timeout, ErrInvalid)
	}
	if p.MaxResponseBytes < 0 {
		return fmt.Errorf("http max response bytes %d: %w: must not be negative", p.MaxResponseBytes, ErrInvalid)
	}
	return nil
}

// Request is one call.
type Request struct {
	// Method is the HTTP method, GET when empty; it is upper-cased.
	// CONNECT is refused.
	Method string
	// URL is the absolute http or https URL to call.
	URL string
	// Header is sent as given, except Host and Content-Length, which Go's
	// client sets itself (the host is the URL's).
	Header http.Header
	// Body is sent as the request body (nil: none).
	Body []byte
	// Timeout, when positive, bounds this call; it can only shorten the
	// policy's Timeout, never lengthen it. Negative is invalid.
	Timeout time.Duration
}

// Response is a call's answer, read whole.
type Response struct {
	// Status is the HTTP status code (of the last response, after
	// redirects).
	Status int
	// Header holds the response headers, with canonical keys.
	Header http.Header
	// Body is the whole body, at most MaxResponseBytes.
	Body []byte
}

// Error is what Do returns when a call fails: the method and URL called,
// and the cause, which wraps one of the Err values or a network error.
type Error struct {
	// Method is the request's method.
	Method string
	// URL is the URL the call was made to (not a redirect's target).
	URL string
	// Err is the cause.
	Err error
}

// Error returns e.g. `http GET https://x/y: not allowed (allow: https://x/api)`.
func (e *Error) Error() string {
	return "http " + e.Method + " " + e.URL + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Observer is told of every call Do makes, once, when it ends: the URL's
// host (RefusedHost for a call refused before it started), how long it
// took, and its error (nil when a response was read).
type Observer func(host string, took time.Duration, err error)

// Option sets up a Client.
type Option func(*Client)

// WithObserver has every call reported to o (for metrics).
func WithObserver(o Observer) Option {
	return func(c *Client) { c.observe = o }
}

// Client makes calls under one Policy. It is safe for concurrent use.
type Client struct {
	policy    Policy
	allow     []prefix
	allowText string
	timeout   time.Duration
	maxBody   int64
	transport *http.Transport
	http      *http.Client
	observe   Observer
}

// New returns a client for p. It does not validate p (see Policy.Validate):
// an Allow entry that is not a valid prefix matches nothing.
func New(p Policy, opts ...Option) *Client {
	c := &Client{
		policy:  p,
		timeout: p.Timeout,
		maxBody: p.MaxResponseBytes,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxResponseBytes
	}
	for _, a := range p.Allow {
		if pr, err := parsePrefix(a); err == nil {
			c.allow = append(c.allow, pr)
		}
	}
	if len(p.Allow) == 0 {
		c.allowText = "none"
	} else {
		c.allowText = strings.Join(p.Allow, ", ")
	}
	dialer := &net.Dialer{Timeout: c.timeout, KeepAlive: 30 * time.Second}
	c.transport = &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    c.timeout,
		MaxConnsPerHost:        MaxConnsPerHost,
		MaxIdleConns:           MaxIdleConns,
		MaxIdleConnsPerHost:    MaxIdleConnsPerHost,
		IdleConnTimeout:        IdleConnTimeout,
		MaxResponseHeaderBytes: MaxResponseHeaderBytes,
		ExpectContinueTimeout:  time.Second,
	}
	c.http = &http.Client{Transport: c.transport, CheckRedirect: c.checkRedirect}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Close closes the idle connections. The client stays usable; a later
// call dials again.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// Allowed reports whether a call to rawURL would be let out: the URL is
// valid and under a prefix of the allow-list.
func (c *Client) Allowed(rawURL string) bool {
	u, err := parseTarget(rawURL)
	return err == nil && c.check(u) == nil
}

// Do makes the call r describes and reads its response whole. The call is
// refused, before anything is dialed, when its URL is not allowed; it
// follows up to MaxRedirects redirects whose targets are allowed. It ends
// within the policy's Timeout (or r.Timeout, if shorter) and ctx. Every
// error is an *Error.
func (c *Client) Do(ctx context.Context, r Request) (resp *Response, err error) {
	start := time.Now()
	method := strings.ToUpper(r.Method)
	if method == "" {
		method = http.MethodGet
	}
	host := RefusedHost
	defer func() {
		if c.observe != nil {
			c.observe(host, time.Since(start), err)
		}
	}()
	fail := func(e error) (*Response, error) {
		return nil, &Error{Method: method, URL: r.URL, Err: e}
	}

	u, perr := parseTarget(r.URL)
	if perr != nil {
		return fail(perr)
	}
	if e := c.check(u); e != nil {
		return fail(e)
	}
	if e := checkMethod(method); e != nil {
		return fail(e)
	}
	if e := checkHeader(r.Header); e != nil {
		return fail(e)
	}
	if r.Timeout < 0 {
		return fail(fmt.Errorf("%w: timeout %s is negative", ErrInvalid, r.Timeout))
	}
	host = strings.ToLower(u.Host)

	timeout := c.timeout
	if r.Timeout > 0 && r.Timeout < timeout {
		timeout = r.Timeout
	}
	timedOut := fmt.Errorf("%w after %s", ErrTimeout, timeout)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, timedOut)
	defer cancel()
	// cause says why the call failed when its context is done: our
	// timeout, or the caller's context.
	cause := func(e error) error {
		if ctx.Err() == nil {
			return e
		}
		return context.Cause(ctx) // timedOut, or the caller's reason
	}

	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, rerr := http.NewRequestWithContext(ctx, method, u.String(), body)
	if rerr != nil {
		return fail(fmt.Errorf("%w: %w", ErrInvalid, rerr))
	}
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}

	res, derr := c.http.Do(req)
	if derr != nil {
		var redirect *redirectError
		if errors.As(derr, &redirect) {
			return fail(redirect.err)
		}
		var ue *url.Error
		if errors.As(derr, &ue) {
			derr = ue.Err // the URL is already in our Error
		}
		return fail(cause(derr))
	}
	defer res.Body.Close()

	if method != http.MethodHead && res.ContentLength > c.maxBody {
		return fail(fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, res.ContentLength, c.maxBody))
	}
	data, berr := io.ReadAll(io.LimitReader(res.Body, c.maxBody+1))
	if berr != nil {
		return fail(fmt.Errorf("reading the body: %w", cause(berr)))
	}
	if int64(len(data)) > c.maxBody {
		return fail(fmt.Errorf("%w: more than %d bytes", ErrTooLarge, c.maxBody))
	}
	header := make(http.Header, len(res.Header))
	for k, vs := range res.Header {
		ck := http.CanonicalHeaderKey(k)
		header[ck] = append(header[ck], vs...)
	}
	return &Response{Status: res.StatusCode, Header: header, Body: data}, nil
}

// redirectError carries a refused redirect out of http.Client.Do, which
// wraps it in a *url.Error.
type redirectError struct{ err error }

func (e *redirectError) Error() string { return e.err.Error() }
func (e *redirectError) Unwrap() error { return e.err }

func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return &redirectError{fmt.Errorf("%w: more than %d", ErrTooManyRedirects, MaxRedirects)}
	}
	if err := c.check(req.URL); err != nil {
		return &redirectError{fmt.Errorf("redirect to %s: %w", redact(req.URL), err)}
	}
	return nil
}

// redact drops a URL's userinfo, for error messages.
func redact(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	v := *u
	v.User = url.User("redacted")
	return v.String()
}

// check says why u may not be called, or nil.
func (c *Client) check(u *url.URL) error {
	if u.User != nil {
		return fmt.Errorf("%w: the URL has userinfo", ErrNotAllowed)
	}
	if hasDotSegment(u.Path) {
		return fmt.Errorf("%w: the path has a . or .. segment", ErrNotAllowed)
	}
	scheme := strings.ToLower(u.Scheme)
	host, port := hostPort(u, scheme)
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	for _, p := range c.allow {
		if p.matches(scheme, host, port, path) {
			return nil
		}
	}
	return fmt.Errorf("%w (allow: %s)", ErrNotAllowed, c.allowText)
}

// prefix is a parsed Allow entry.
type prefix struct {
	scheme, host, port string
	path               string // escaped; "/" at least
}

func (p prefix) matches(scheme, host, port, path string) bool {
	if scheme != p.scheme || host != p.host || port != p.port {
		return false
	}
	if strings.HasSuffix(p.path, "/") {
		return strings.HasPrefix(path, p.path)
	}
	return path == p.path || strings.HasPrefix(path, p.path+"/")
}

func parsePrefix(s string) (prefix, error) {
	u, err := url.Parse(s)
	if err != nil {
		return prefix{}, fmt.Errorf("not a URL: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme != "http" && scheme != "https":
		return prefix{}, errors.New("the scheme must be http or https")
	case u.Opaque != "" || u.Host == "":
		return prefix{}, errors.New("must be an absolute URL with a host, like https://api.example.com/v1")
	case u.User != nil:
		return prefix{}, errors.New("must not have userinfo")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return prefix{}, errors.New("must not have a query or fragment")
	case hasDotSegment(u.Path):
		return prefix{}, errors.New("the path must not have . or .. segments")
	}
	host, port := hostPort(u, scheme)
	if host == "" {
		return prefix{}, errors.New("the host is empty")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return prefix{}, fmt.Errorf("bad port %q", port)
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return prefix{scheme: scheme, host: host, port: port, path: path}, nil
}

// parseTarget parses the URL of a call.
func parseTarget(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w URL: %w", ErrInvalid, err)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("%w URL: the scheme must be http or https", ErrInvalid)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, fmt.Errorf("%w URL: it must be absolute, with a host", ErrInvalid)
	}
	return u, nil
}

// hostPort returns u's host, lower-cased and without a trailing dot, and
// its port, the scheme's when not written.
func hostPort(u *url.URL, scheme string) (string, string) {
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port := u.Port()
	if port == "" {
		port = "80"
		if scheme == "https" {
			port = "443"
		}
	}
	return host, port
}

// hasDotSegment reports whether a decoded path has a "." or ".." segment,
// splitting at "/" and at "\" (which some servers take for "/").
func hasDotSegment(path string) bool {
	for _, seg := range strings.FieldsFunc(path, func(r rune) bool { return r == '/' || r == '\\' }) {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func checkMethod(m string) error {
	if m == http.MethodConnect {
		return fmt.Errorf("%w method CONNECT", ErrInvalid)
	}
	if !isToken(m) {
		return fmt.Errorf("%w method %q", ErrInvalid, m)
	}
	return nil
}

func checkHeader(h http.Header) error {
	for k, vs := range h {
		if !isToken(k) {
			return fmt.Errorf("%w header name %q", ErrInvalid, k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return fmt.Errorf("%w header %s: the value has a line break or NUL", ErrInvalid, k)
			}
		}
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token (a method or header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
