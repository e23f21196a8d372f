package gateway

import (
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
)

// handshakeError is why an upgrade request is refused, as an HTTP response.
type handshakeError struct {
	status int
	reason string
	header http.Header
}

// checkHandshake validates the parts of an opening handshake that RFC 6455
// section 4.2.1 requires, before the service sees the request.
func checkHandshake(r *http.Request) *handshakeError {
	switch {
	case r.Method != http.MethodGet:
		return &handshakeError{http.StatusMethodNotAllowed, "WebSocket upgrade needs GET", http.Header{"Allow": {"GET"}}}
	case !headerHasToken(r.Header, "Upgrade", "websocket"):
		return &handshakeError{http.StatusUpgradeRequired, "this is a WebSocket endpoint: send Upgrade: websocket",
			http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}}}
	case !headerHasToken(r.Header, "Connection", "upgrade"):
		return &handshakeError{http.StatusBadRequest, "missing Connection: Upgrade", nil}
	case !validKey(r.Header.Get("Sec-WebSocket-Key")):
		return &handshakeError{http.StatusBadRequest, "missing or malformed Sec-WebSocket-Key", nil}
	case r.Header.Get("Sec-WebSocket-Version") != "13":
		return &handshakeError{http.StatusUpgradeRequired, "unsupported WebSocket version; this server speaks 13",
			http.Header{"Sec-WebSocket-Version": {"13"}}}
	}
	return nil
}

// validKey reports whether key is the base64 encoding of 16 bytes.
func validKey(key string) bool {
	if len(key) != 24 {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(key)
	return err == nil && len(b) == 16
}

// headerHasToken reports whether the comma-separated header name contains token.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// originAllowed applies an endpoint's origin allow-list. With an empty list
// only same-origin browsers (see sameOrigin) and clients that send no
// Origin are let in. Entries are compared by scheme, host and port (the
// scheme's default port when none is given); "*" allows any origin.
func originAllowed(r *http.Request, allowed []string) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	if len(allowed) == 0 {
		return sameOrigin(r, o)
	}
	po, ok := parseOrigin(o)
	for _, a := range allowed {
		if a == "*" {
			return true
		}
		if pa, aok := parseOrigin(a); ok && aok && pa == po {
			return true
		}
	}
	return false
}

// chooseProtocol returns the first subprotocol the client offers that the
// endpoint speaks, or "" (the connection then goes on without one).
func chooseProtocol(r *http.Request, speaks []string) string {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" && slices.Contains(speaks, p) {
				return p
			}
		}
	}
	return ""
}
