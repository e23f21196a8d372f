package scripting

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// HTTP handlers.
//
// A script that returns an http(request) handler answers the plain HTTP
// requests to its endpoint's path and below (gateway.HTTPHandler). Each
// request is an event in the inbox of a state chosen round robin, handled
// under the budget like any handler (it may wait on db and http calls:
// the reply is sent when the handler returns). When that inbox is full, in
// events or in payload bytes, the request is answered 503 with
// Retry-After at once; nothing waits for room.

var _ gateway.HTTPHandler = (*Service)(nil)

// httpCall is one HTTP request travelling through an inbox, and where its
// answer goes.
type httpCall struct {
	ctx   context.Context // the request's: done when its client has gone
	req   *gateway.HTTPRequest
	reply chan *gateway.HTTPResponse // buffered: the state never waits on it
}

// httpRetryAfter is the Retry-After, in seconds, of a request refused
// because the state's inbox is full.
const httpRetryAfter = "1"

// closedChan is always ready: acquiring inbox bytes with it as done never
// waits.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// ServesHTTP reports whether the running script returns an http handler.
func (s *Service) ServesHTTP() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.gen.states[0].handlers[evHTTP] != nil
}

// HandleHTTP runs the script's http handler for r in one of its states,
// chosen round robin, and returns its answer; 503 with Retry-After when
// that state's inbox is full (in events or in inbox_bytes, the body
// counting as a message's payload) or the service is stopping. It waits
// for the answer until ctx ends (the client has gone: the answer is then
// dropped, and a request not yet started is not handled at all).
func (s *Service) HandleHTTP(ctx context.Context, r *gateway.HTTPRequest) *gateway.HTTPResponse {
	call := &httpCall{ctx: ctx, req: r, reply: make(chan *gateway.HTTPResponse, 1)}
	n := int64(len(r.Body))
	s.mu.RLock()
	st := s.gen.states[int(s.nextHTTP.Add(1)-1)%len(s.gen.states)]
	queued := st.inboxBytes.acquire(n, inboxLimit(st.gen.ep), closedChan, nil)
	if queued && !s.put(st, event{kind: evHTTP, http: call}, false, nil) {
		st.inboxBytes.release(n)
		queued = false
	}
	s.mu.RUnlock()
	if !queued {
		s.metrics.Refused("http_busy")
		return textResponse(http.StatusServiceUnavailable, "service busy, try again",
			http.Header{"Retry-After": {httpRetryAfter}})
	}
	select {
	case resp := <-call.reply:
		return resp
	case <-ctx.Done():
		return nil
	case <-s.ctx.Done():
		return textResponse(http.StatusServiceUnavailable, "service stopping", nil)
	}
}

// textResponse is a plain-text answer.
func textResponse(status int, text string, h http.Header) *gateway.HTTPResponse {
	if h == nil {
		h = http.Header{}
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	return &gateway.HTTPResponse{Status: status, Header: h, Body: []byte(text + "\n")}
}

// serveHTTP runs the http handler for one request, on the state's
// goroutine, and sends its answer: 500 with a generic body when it raised
// an error (logged like any handler's) or returned what is not an answer.
func (st *state) serveHTTP(call *httpCall) {
	st.inboxBytes.release(int64(len(call.req.Body)))
	if call.ctx.Err() != nil {
		return // the client has gone before the handler started
	}
	fn := st.handlers[evHTTP]
	if fn == nil { // a reload dropped the handler after the request came
		call.reply <- textResponse(http.StatusNotFound, "not found", nil)
		return
	}
	rets, err := st.invoke(evHTTP, nil, fn, 3, st.httpRequestTable(call.req))
	if err != nil {
		call.reply <- textResponse(http.StatusInternalServerError, "internal error", nil)
		return
	}
	resp, err := httpResponse(rets[0], rets[1], rets[2])
	if err != nil {
		st.report("http", nil, &ScriptError{Script: st.gen.ep.Script, Msg: "http handler: " + err.Error()})
		call.reply <- textResponse(http.StatusInternalServerError, "internal error", nil)
		return
	}
	call.reply <- resp
}

// httpRequestTable describes a request to the http handler: method, path,
// query (name -> first value), headers (lower-case name -> first value),
// body, remote and host.
func (st *state) httpRequestTable(r *gateway.HTTPRequest) *lua.LTable {
	t := st.L.CreateTable(0, 7)
	t.RawSetString("method", lua.LString(r.Method))
	t.RawSetString("path", lua.LString(r.Path))
	t.RawSetString("body", lua.LString(r.Body))
	t.RawSetString("remote", lua.LString(r.RemoteAddr))
	t.RawSetString("host", lua.LString(r.Host))
	q := st.L.CreateTable(0, len(r.Query))
	for k, v := range r.Query {
		q.RawSetString(k, lua.LString(v[0]))
	}
	t.RawSetString("query", q)
	h := st.L.CreateTable(0, len(r.Header))
	for k, v := range r.Header {
		h.RawSetString(strings.ToLower(k), lua.LString(v[0]))
	}
	t.RawSetString("headers", h)
	return t
}

// httpResponse converts what an http handler returned: status (nil: 200;
// else a whole number from 200 to 599), body (nil: empty; a string or a
// number as it is, text/plain unless the headers say otherwise; a table as
// JSON, application/json) and headers (nil, or a table of names to
// strings or numbers; the framing headers are the gateway's).
func httpResponse(status, body, headers lua.LValue) (*gateway.HTTPResponse, error) {
	resp := &gateway.HTTPResponse{Status: http.StatusOK, Header: http.Header{}}
	switch v := status.(type) {
	case *lua.LNilType:
	case lua.LNumber:
		code := int(v)
		if float64(code) != float64(v) || code < 200 || code > 599 {
			return nil, fmt.Errorf("status must be a whole number from 200 to 599, got %s", v)
		}
		resp.Status = code
	default:
		return nil, fmt.Errorf("status must be a number, got %s", status.Type())
	}
	contentType := "text/plain; charset=utf-8"
	switch v := body.(type) {
	case *lua.LNilType:
	case lua.LString:
		resp.Body = []byte(v)
	case lua.LNumber:
		resp.Body = []byte(v.String())
	case *lua.LTable:
		b, err := luaval.Encode(nil, v)
		if err != nil {
			return nil, fmt.Errorf("body: %w", err)
		}
		resp.Body, contentType = b, "application/json"
	default:
		return nil, fmt.Errorf("body must be a string or a table, got %s", body.Type())
	}
	switch v := headers.(type) {
	case *lua.LNilType:
	case *lua.LTable:
		var err error
		v.ForEach(func(k, val lua.LValue) {
			if err == nil {
				err = setHeader(resp.Header, k, val)
			}
		})
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("headers must be a table, got %s", headers.Type())
	}
	if resp.Header.Get("Content-Type") == "" {
		resp.Header.Set("Content-Type", contentType)
	}
	return resp, nil
}

// setHeader sets one header an http handler returned, refusing a name
// that is not an HTTP token, a value with control characters, and the
// headers the gateway sets itself.
func setHeader(h http.Header, k, v lua.LValue) error {
	name, ok := k.(lua.LString)
	if !ok || !validHeaderName(string(name)) {
		return fmt.Errorf("header name %s is not an HTTP token", k.String())
	}
	var value string
	switch v := v.(type) {
	case lua.LString:
		value = string(v)
	case lua.LNumber:
		value = v.String()
	default:
		return fmt.Errorf("header %s: the value must be a string or a number, got %s", name, v.Type())
	}
	if strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
		return fmt.Errorf("header %s: the value has a control character", name)
	}
	switch http.CanonicalHeaderKey(string(name)) {
	case "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Keep-Alive", "Trailer":
		return fmt.Errorf("header %s is set by the gateway", name)
	}
	h.Set(string(name), value)
	return nil
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
