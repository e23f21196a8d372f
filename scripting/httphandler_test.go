package scripting

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/config"
)

// httpHandlerScript answers plain HTTP at /ws and below: /ws/echo
// describes the request, /ws/json answers a table, /ws/announce
// broadcasts the body to the room "news", /ws/boom raises an error,
// /ws/bad returns a status that is not one, /ws/call waits on the
// backend (options.backend), anything else 404.
const httpHandlerScript = `
local function boom() error("boom in a helper") end
return {
  connect = function(c) rooms.join("news", c) end,
  message = function(c, m) c:send("ws " .. m) end,
  http = function(req)
    if req.path == "/ws/echo" then
      return 201, req.method .. " " .. req.path .. " q=" .. tostring(req.query.q) ..
        " h=" .. tostring(req.headers["x-test"]) .. " body=" .. req.body ..
        " remote=" .. (req.remote:match("^127%.0%.0%.1:%d+$") and "ok" or req.remote),
        { ["X-Reply"] = "yes", ["Cache-Control"] = "no-store" }
    elseif req.path == "/ws/json" then
      return nil, { ok = true, n = 2 }
    elseif req.path == "/ws/announce" then
      rooms.broadcast("news", "announce " .. req.body)
      return 204
    elseif req.path == "/ws/boom" then
      boom()
    elseif req.path == "/ws/bad" then
      return "teapot"
    elseif req.path == "/ws/badheader" then
      return 200, "x", { ["Content-Length"] = "1" }
    elseif req.path == "/ws/call" then
      local r = http.get(options.backend .. "/api/wait")
      return 200, "called " .. r.body
    elseif req.path == "/ws" then
      return 200, "root"
    end
    return 404, "no " .. req.path
  end,
}`

// request makes one HTTP request and returns its status, body and header.
func request(t *testing.T, method, url, body string, h http.Header) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestHTTPHandler(t *testing.T) {
	log := &syncBuffer{}
	b := newBackend(t)
	addr := serveEndpoint(t, httpHandlerScript, slog.New(slog.NewTextHandler(log, nil)), func(ep *config.Endpoint) {
		ep.States, ep.MaxMessageBytes = 2, 100
		ep.Options = map[string]any{"backend": b.URL}
		ep.HTTP.Allow = []string{b.URL + "/api"}
	})
	base := "http://" + addr
	member := dialScript(t, addr, nil) // WebSocket upgrades still reach connect and message
	if got := roundTrip(t, member, "hi"); got != "ws hi" {
		t.Fatalf("websocket: got %q", got)
	}

	status, body, h := request(t, "POST", base+"/ws/echo?q=1&q=2", "payload", http.Header{"X-Test": {"t"}})
	if want := "POST /ws/echo q=1 h=t body=payload remote=ok"; status != 201 || body != want ||
		h.Get("X-Reply") != "yes" || h.Get("Cache-Control") != "no-store" || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Errorf("echo: %d %q %v, want 201 %q", status, body, h, want)
	}
	if status, body, h := request(t, "GET", base+"/ws/json", "", nil); status != 200 || body != `{"n":2,"ok":true}` && body != `{"ok":true,"n":2}` ||
		h.Get("Content-Type") != "application/json" {
		t.Errorf("json: %d %q %v", status, body, h)
	}
	if status, body, _ := request(t, "GET", base+"/ws", "", nil); status != 200 || body != "root" {
		t.Errorf("the endpoint's own path: %d %q", status, body)
	}
	if status, body, _ := request(t, "GET", base+"/ws/elsewhere", "", nil); status != 404 || body != "no /ws/elsewhere" {
		t.Errorf("the script's 404: %d %q", status, body)
	}
	if status, _, _ := request(t, "GET", base+"/wsx", "", nil); status != 404 {
		t.Errorf("/wsx is not below /ws: %d", status)
	}

	if status, _, _ := request(t, "POST", base+"/ws/announce", "hello", nil); status != 204 {
		t.Errorf("announce: %d", status)
	}
	if got := readText(t, member); got != "announce hello" {
		t.Errorf("the room member got %q", got)
	}

	if status, body, _ := request(t, "POST", base+"/ws/echo", strings.Repeat("x", 101), nil); status != 413 {
		t.Errorf("a body over max_message_bytes: %d %q, want 413", status, body)
	}
	if status, _, _ := request(t, "POST", base+"/ws/echo", strings.Repeat("x", 100), nil); status != 201 {
		t.Errorf("a body of max_message_bytes: %d, want 201", status)
	}

	for _, path := range []string{"/ws/boom", "/ws/bad", "/ws/badheader"} {
		if status, body, _ := request(t, "GET", base+path, "", nil); status != 500 || body != "internal error\n" {
			t.Errorf("%s: %d %q, want 500 internal error", path, status, body)
		}
	}
	logged := log.String()
	for _, want := range []string{"handler=http", "example.lua:2: boom in a helper", "traceback=", "example.lua:18: in main chunk",
		"status must be a number, got string", "header Content-Length is set by the gateway"} {
		if !strings.Contains(logged, want) {
			t.Errorf("the log lacks %q:\n%s", want, logged)
		}
	}

	// A handler waiting on a call holds neither its state nor the other requests.
	called := make(chan string, 1)
	go func() {
		_, body, _ := request(t, "GET", base+"/ws/call", "", nil)
		called <- body
	}()
	waitFor(t, func() bool { return b.waiting.Load() == 1 })
	for range 4 { // both states serve meanwhile
		if status, body, _ := request(t, "GET", base+"/ws", "", nil); status != 200 || body != "root" {
			t.Fatalf("while a handler waits: %d %q", status, body)
		}
	}
	b.release <- struct{}{}
	if got := <-called; got != "called waited" {
		t.Errorf("the suspended handler answered %q", got)
	}
	if got := roundTrip(t, member, "still"); got != "ws still" {
		t.Errorf("after all that the websocket got %q", got)
	}
}

func TestNoHTTPHandlerKeepsTheGatewaysAnswers(t *testing.T) {
	addr := serveEndpoint(t, `return { message = function(c, m) c:send(m) end }`, slog.New(slog.DiscardHandler),
		func(ep *config.Endpoint) { ep.States = 1 })
	base := "http://" + addr
	if status, _, h := request(t, "GET", base+"/ws", "", nil); status != http.StatusUpgradeRequired || h.Get("Upgrade") != "websocket" {
		t.Errorf("plain GET on the endpoint: %d %v, want 426", status, h)
	}
	if status, _, _ := request(t, "POST", base+"/ws/api", "x", nil); status != http.StatusNotFound {
		t.Errorf("below the endpoint: %d, want 404", status)
	}
}

// TestHTTPHandlerInboxFull: a request finding its state's inbox full is
// answered 503 with Retry-After at once; the ones queued are answered.
func TestHTTPHandlerInboxFull(t *testing.T) {
	b := newBackend(t)
	was := maxSuspended
	maxSuspended = 1 // read as the service makes its state
	addr, svc := serveService(t, httpHandlerScript, slog.New(slog.DiscardHandler), func(ep *config.Endpoint) {
		ep.States, ep.Inbox = 1, 1
		ep.Options = map[string]any{"backend": b.URL}
		ep.HTTP.Allow = []string{b.URL + "/api"}
	})
	maxSuspended = was
	base := "http://" + addr
	answers := make(chan string, 2)
	get := func(path string) {
		status, body, _ := request(t, "GET", base+path, "", nil)
		answers <- path + " " + http.StatusText(status) + " " + body
	}
	go get("/ws/call") // suspends: the state, at its bound, takes no more events
	waitFor(t, func() bool { return b.waiting.Load() == 1 })
	go get("/ws") // waits in the inbox, which it fills
	inbox := svc.gen.states[0].inbox
	waitFor(t, func() bool { return len(inbox) == 1 })
	status, _, h := request(t, "GET", base+"/ws", "", nil)
	if status != http.StatusServiceUnavailable {
		t.Errorf("with the inbox full: %d, want 503", status)
	}
	if h.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After: %v", h)
	}
	b.release <- struct{}{}
	got := map[string]bool{<-answers: true, <-answers: true}
	for _, want := range []string{"/ws/call OK called waited", "/ws OK root"} {
		if !got[want] {
			t.Errorf("answers %v lack %q", got, want)
		}
	}
}
