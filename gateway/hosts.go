package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/moongate/moongate/gateway/config"
)

// listenAddr is the host the server listens on, as the listener reports it.
type listenAddr struct {
	host     string // "" for all interfaces
	loopback bool
}

// parseListen splits a host:port listen address.
func parseListen(addr string) *listenAddr {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip := net.ParseIP(host)
	if ip != nil && ip.IsUnspecified() {
		host = ""
	}
	return &listenAddr{host: host, loopback: isLoopbackName(host)}
}

// listen returns the address the server listens on (the config's until
// Serve has started).
func (s *Server) listen() *listenAddr {
	if la := s.listenAt.Load(); la != nil {
		return la
	}
	return parseListen(s.routes.Load().cfg.Listen)
}

// isLoopbackName reports whether host (without port) is localhost or a
// loopback IP address.
func isLoopbackName(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requestHost returns the host name of r's Host header, without port or
// brackets, in lower case.
func requestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.ToLower(strings.Trim(host, "[]"))
}

// hostAllowed reports whether r's Host names this gateway: a loopback
// name or address, the host it listens on, or one of allowed_hosts.
func (s *Server) hostAllowed(r *http.Request, cfg *config.Config) bool {
	host := requestHost(r)
	if isLoopbackName(host) {
		return true
	}
	if la := s.listen(); la.host != "" && strings.EqualFold(la.host, host) {
		return true
	}
	for _, a := range cfg.AllowedHosts {
		if strings.EqualFold(a, host) {
			return true
		}
	}
	return false
}

// hostChecked reports whether every request's Host is checked: when the
// gateway listens on a loopback address (where DNS rebinding would let a
// web page reach it) or allowed_hosts is set.
func (s *Server) hostChecked(cfg *config.Config) bool {
	return len(cfg.AllowedHosts) > 0 || s.listen().loopback
}

// fromLoopback reports whether r came from a loopback address.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// local reports why r may not reach a loopback-only path (admin, and
// /metrics with expose: loopback), as an HTTP status and reason; status 0
// means it may. It must come from a loopback address through a Host that
// names this gateway.
func (s *Server) local(r *http.Request) (status int, reason string) {
	switch {
	case !fromLoopback(r):
		return http.StatusForbidden, "this path answers only on this machine"
	case !s.hostAllowed(r, s.routes.Load().cfg):
		return http.StatusMisdirectedRequest, "this Host is not served here"
	}
	return 0, ""
}

// adminRefusal reports why the admin request r is refused (status 0: it
// is not): besides being local, it must not come from another site's page,
// and a request that changes something must be one no page can send
// without asking first (a CORS preflight, which the gateway never grants).
//
// A request that presents the admin token (see SetAdminToken) need not be
// local, only through a Host that names this gateway where Hosts are
// checked; one that presents a wrong token is refused with 401.
func (s *Server) adminRefusal(r *http.Request) (status int, reason string) {
	switch given, ok := s.presentedToken(r); {
	case ok && !s.tokenMatches(given):
		return http.StatusUnauthorized, "wrong admin token"
	case ok:
		if cfg := s.routes.Load().cfg; s.hostChecked(cfg) && !s.hostAllowed(r, cfg) {
			return http.StatusMisdirectedRequest, "this Host is not served here"
		}
	default:
		if status, reason := s.local(r); status != 0 {
			if status == http.StatusForbidden && s.adminToken != nil {
				return http.StatusUnauthorized, "this path answers only on this machine or with the admin token"
			}
			return status, reason
		}
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(r, o) {
		return http.StatusForbidden, "cross-site admin requests are refused"
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return http.StatusForbidden, "cross-site admin requests are refused"
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !nonSimple(r) {
		return http.StatusForbidden, "send Content-Type: application/json or X-Moongate-Admin: 1"
	}
	return 0, ""
}

// presentedToken returns the admin token r presents, as a Bearer token or
// as the password of Basic authentication; ok is false when it presents
// none or no admin token is set.
func (s *Server) presentedToken(r *http.Request) (token string, ok bool) {
	if s.adminToken == nil {
		return "", false
	}
	if _, pass, basic := r.BasicAuth(); basic {
		return pass, true
	}
	scheme, tok, found := strings.Cut(r.Header.Get("Authorization"), " ")
	if found && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok), true
	}
	return "", false
}

// tokenMatches reports whether given is the admin token, in time that
// does not depend on where they differ.
func (s *Server) tokenMatches(given string) bool {
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], s.adminToken) == 1
}

// nonSimple reports whether a browser would have had to ask before sending
// r from another site: it carries X-Moongate-Admin or a JSON content type.
func nonSimple(r *http.Request) bool {
	if r.Header.Get("X-Moongate-Admin") != "" {
		return true
	}
	ct := strings.ToLower(strings.TrimSpace(strings.SplitN(r.Header.Get("Content-Type"), ";", 2)[0]))
	return ct == "application/json"
}

// origin is a parsed web origin: scheme, host and port, compared exactly.
type origin struct{ scheme, host, port string }

// parseOrigin parses an origin (scheme://host[:port]), filling in the
// scheme's default port.
func parseOrigin(s string) (origin, bool) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return origin{}, false
	}
	o := origin{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: u.Port()}
	if o.port == "" {
		o.port = defaultPort(o.scheme)
	}
	return o, true
}

func defaultPort(scheme string) string {
	switch scheme {
	case "https", "wss":
		return "443"
	case "http", "ws":
		return "80"
	}
	return ""
}

// sameOrigin reports whether the Origin o is the page's own site: its host
// and port are those of r's Host, and its scheme is https, or http when r
// came over plain HTTP (a plain http page may not talk to a TLS gateway
// as its own; behind a TLS-terminating proxy the gateway sees plain HTTP
// and the page is https).
func sameOrigin(r *http.Request, o string) bool {
	po, ok := parseOrigin(o)
	if !ok || (po.scheme != "https" && (po.scheme != "http" || r.TLS != nil)) {
		return false
	}
	host, port := requestHost(r), ""
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		port = p
	}
	if port == "" {
		port = po.port // a Host without port names the scheme's default one
	}
	return po.host == host && po.port == port
}
