package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/config"
)

// HTTPHandler is implemented by a Service that also answers plain HTTP
// requests (any request that does not ask for a WebSocket upgrade) to its
// endpoint's path and the paths below it (/chat/api/announce for the
// endpoint /chat). The gateway reads the request's body, within the
// endpoint's max_message_bytes (413 past it), before calling HandleHTTP.
// While ServesHTTP reports false the gateway answers as it does for a
// service without the interface: 426 on the endpoint's path, and the
// paths below it go on to the static folders.
type HTTPHandler interface {
	// ServesHTTP reports whether the service answers plain HTTP requests
	// now (a script's http handler may come or go with a reload).
	ServesHTTP() bool
	// HandleHTTP answers r. ctx ends when the client goes away or the
	// server shuts down; the response is then discarded. A nil response
	// is answered 500.
	HandleHTTP(ctx context.Context, r *HTTPRequest) *HTTPResponse
}

// HTTPRequest is a plain HTTP request to an endpoint, as an HTTPHandler
// gets it. Query and Header keep the first value of each name, within the
// same bounds as a client's upgrade request (client.KeptBytes each).
type HTTPRequest struct {
	Method     string
	Path       string
	Query      map[string][]string
	Header     map[string][]string // canonical names
	Host       string
	RemoteAddr string
	Body       []byte // at most the endpoint's max_message_bytes
}

// HTTPResponse is an HTTPHandler's answer. Status must be 200 to 599 (any
// other is answered 500). The gateway frames the body itself: Header's
// Content-Length, Transfer-Encoding, Connection, Upgrade, Keep-Alive and
// Trailer are dropped.
type HTTPResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// framingHeaders are the response headers the gateway sets itself.
var framingHeaders = []string{"Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Keep-Alive", "Trailer"}

// httpHandler returns e's service as an HTTPHandler when it answers plain
// HTTP now, or nil.
func (e *endpoint) httpHandler() HTTPHandler {
	if h, ok := e.service.(HTTPHandler); ok && h.ServesHTTP() {
		return h
	}
	return nil
}

// isUpgrade reports whether r asks for a WebSocket upgrade.
func isUpgrade(r *http.Request) bool { return headerHasToken(r.Header, "Upgrade", "websocket") }

// below returns the endpoint whose path r's path is below (longest
// first), if that endpoint's service answers plain HTTP now; else nil.
func (rt *routes) below(r *http.Request) (*endpoint, HTTPHandler) {
	var best *endpoint
	for path, e := range rt.endpoints {
		prefix := strings.TrimSuffix(path, "/") + "/"
		if strings.HasPrefix(r.URL.Path, prefix) && (best == nil || len(path) > len(best.cfg.Path)) {
			best = e
		}
	}
	if best == nil {
		return nil, nil
	}
	if h := best.httpHandler(); h != nil {
		return best, h
	}
	return nil, nil
}

// serveScriptHTTP hands a plain HTTP request to e's service: a connection
// past the limits is answered 503; the body is read within the endpoint's
// max_message_bytes (413 past it); the service's answer is written unless
// the client has gone.
func (e *endpoint) serveScriptHTTP(w http.ResponseWriter, r *http.Request, h HTTPHandler) {
	if overLimit(r) {
		e.refuse(w, "http_limit", http.StatusServiceUnavailable, "too many connections, try again later", http.Header{"Retry-After": {"5"}})
		return
	}
	limit := e.cfg.MaxMessageBytes
	if limit <= 0 {
		limit = config.DefaultMaxMessageBytes
	}
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close")
		http.Error(w, "request body larger than "+strconv.FormatInt(limit, 10)+" bytes", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "request body larger than "+strconv.FormatInt(limit, 10)+" bytes", http.StatusRequestEntityTooLarge)
			return
		}
		w.Header().Set("Connection", "close")
		http.Error(w, "could not read the request body", http.StatusBadRequest)
		return
	}
	kept := client.NewRequest(r, nil, "")
	resp := h.HandleHTTP(r.Context(), &HTTPRequest{
		Method: r.Method, Path: kept.Path, Query: kept.Query, Header: kept.Header,
		Host: kept.Host, RemoteAddr: kept.RemoteAddr, Body: body,
	})
	if r.Context().Err() != nil {
		return // the client has gone
	}
	if resp == nil || resp.Status < 200 || resp.Status > 599 {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	for k, v := range resp.Header {
		if !slices.Contains(framingHeaders, http.CanonicalHeaderKey(k)) {
			hdr[k] = v
		}
	}
	if r.Method == http.MethodHead {
		w.WriteHeader(resp.Status)
		return
	}
	hdr.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	w.Write(resp.Body)
}
