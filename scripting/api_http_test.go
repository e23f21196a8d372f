package scripting

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/config"
)

// backend is a real HTTP server for the http module's tests.
type backend struct {
	*httptest.Server
	conns   atomic.Int32  // connections accepted
	outside atomic.Int32  // requests that reached /outside
	waiting atomic.Int32  // requests waiting in /api/wait
	release chan struct{} // lets one /api/wait request answer
}

func newBackend(t *testing.T) *backend {
	b := &backend{release: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Reply", "yes")
		w.Header().Add("X-Many", "1")
		w.Header().Add("X-Many", "2")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, r.Method+" "+r.Header.Get("Content-Type")+" "+r.Header.Get("X-Token")+" "+string(body))
	})
	mux.HandleFunc("/api/big", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 2048))
	})
	mux.HandleFunc("/api/wait", func(w http.ResponseWriter, r *http.Request) {
		b.waiting.Add(1)
		defer b.waiting.Add(-1)
		select {
		case <-b.release:
			io.WriteString(w, "waited")
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/api/inside", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/api/echo", http.StatusFound)
	})
	mux.HandleFunc("/api/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/outside", http.StatusFound)
	})
	mux.HandleFunc("/outside", func(w http.ResponseWriter, r *http.Request) {
		b.outside.Add(1)
		io.WriteString(w, "outside")
	})
	b.Server = httptest.NewUnstartedServer(mux)
	b.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.Start()
	t.Cleanup(func() {
		close(b.release) // a test that stops early leaves no request waiting
		b.Close()
	})
	return b
}

// httpScript runs "verb url" requests with the http module and answers
// with what came back, or "error: " and the error.
const httpScript = `
local function reply(c, ok, v)
  if ok then c:send(type(v) == "table" and json.encode(v) or tostring(v))
  else c:send("error: " .. tostring(v)) end
end
return { message = function(c, m)
  local verb, url = m:match("^(%S+) (.*)$")
  if verb == "get" then
    reply(c, pcall(function()
      local r = http.get(url)
      return r.status .. " " .. r.body .. " " .. tostring(r.headers["x-reply"]) .. " " .. tostring(r.headers["x-many"])
    end))
  elseif verb == "post" then
    reply(c, pcall(function()
      local r = http.post(url, {n = 1}, {["X-Token"] = "t"})
      return r.status .. " " .. r.body
    end))
  elseif verb == "put" then
    reply(c, pcall(function()
      local r = http.request{method = "put", url = url, body = "raw", headers = {["Content-Type"] = "text/plain"}, timeout = 2}
      return r.status .. " " .. r.body
    end))
  elseif verb == "quick" then
    reply(c, pcall(http.request, {url = url, timeout = 0.05}))
  elseif verb == "fast" then
    c:send("fast")
  end
end }`

func serveHTTP(t *testing.T, b *backend, tune func(*config.Endpoint)) string {
	t.Helper()
	return serveEndpoint(t, httpScript, slog.New(slog.DiscardHandler), func(ep *config.Endpoint) {
		ep.States, ep.Budget = 1, 100*time.Millisecond
		ep.HTTP.Allow = []string{b.URL + "/api"}
		ep.HTTP.MaxResponseBytes = 1024
		if tune != nil {
			tune(ep)
		}
	})
}

func TestHTTPCalls(t *testing.T) {
	b := newBackend(t)
	c := dialScript(t, serveHTTP(t, b, nil), nil)
	for _, step := range []struct{ send, want string }{
		{"get " + b.URL + "/api/echo", "201 GET    yes 1, 2"},
		{"post " + b.URL + "/api/echo", `201 POST application/json t {"n":1}`},
		{"put " + b.URL + "/api/echo", "201 PUT text/plain  raw"},
		{"get " + b.URL + "/api/inside", "201 GET    yes 1, 2"},
	} {
		if got := roundTrip(t, c, step.send); got != step.want {
			t.Errorf("%s:\n got %q\nwant %q", step.send, got, step.want)
		}
	}
}

func TestHTTPRefusals(t *testing.T) {
	b := newBackend(t)
	c := dialScript(t, serveHTTP(t, b, nil), nil)
	before := b.conns.Load()
	for _, url := range []string{b.URL + "/outside", b.URL + "/apix", "http://example.invalid/api"} {
		got := roundTrip(t, c, "get "+url)
		if !strings.HasPrefix(got, "error: ") || !strings.Contains(got, "not allowed") {
			t.Errorf("get %s: got %q, want a not allowed error", url, got)
		}
	}
	if n := b.conns.Load(); n != before {
		t.Errorf("%d connections made for refused URLs, want none", n-before)
	}
	for send, want := range map[string]string{
		"get " + b.URL + "/api/away":   "not allowed",
		"get " + b.URL + "/api/big":    "too large",
		"quick " + b.URL + "/api/wait": "timed out",
	} {
		if got := roundTrip(t, c, send); !strings.HasPrefix(got, "error: ") || !strings.Contains(got, want) {
			t.Errorf("%s: got %q, want an error containing %q", send, got, want)
		}
	}
	if n := b.outside.Load(); n != 0 {
		t.Errorf("a redirect outside the allow list was followed %d times", n)
	}
	if got := roundTrip(t, c, "fast x"); got != "fast" {
		t.Errorf("the client is still served after failed calls: got %q", got)
	}
}

func TestHTTPCallDoesNotHoldTheState(t *testing.T) {
	b := newBackend(t)
	addr := serveHTTP(t, b, nil)
	a := dialScript(t, addr, nil)
	other := dialScript(t, addr, nil)
	sendOnly(t, a, "get "+b.URL+"/api/wait")
	sendOnly(t, a, "fast a")
	waitFor(t, func() bool { return b.waiting.Load() == 1 })
	begin := time.Now()
	for time.Since(begin) < 300*time.Millisecond { // three budgets spent waiting
		if got := roundTrip(t, other, "fast x"); got != "fast" {
			t.Fatalf("other client got %q while a waits", got)
		}
	}
	b.release <- struct{}{}
	for _, want := range []string{"200 waited nil nil", "fast"} {
		if got := readText(t, a); got != want {
			t.Fatalf("a got %q, want %q (its events keep their order)", got, want)
		}
	}
	metrics := scrape(t, addr)
	host := strings.TrimPrefix(b.URL, "http://")
	for _, want := range []string{
		`moongate_http_calls_total{endpoint="/ws",host="` + host + `",result="ok"} 1`,
		`moongate_suspended_handlers{endpoint="/ws"} 0`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// scrape returns the gateway's /metrics page.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
