package gateway_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/gatewaytest"
	"github.com/moongate/moongate/gateway/wsproto"
)

// goEcho is a Service written in Go: it echoes, refuses ?deny, and
// records how each client ended.
type goEcho struct {
	mu     sync.Mutex
	closed map[string]client.Closed
}

func (s *goEcho) Connect(_ context.Context, c *client.Client) error {
	if c.Request().Query.Get("deny") != "" {
		return &gateway.Refusal{Status: http.StatusPaymentRequired, Reason: "pay first"}
	}
	return nil
}

func (s *goEcho) Message(_ context.Context, c *client.Client, m wsproto.Message) {
	c.Send(wsproto.Frame(m.Op, m.Data))
}

func (s *goEcho) Closed(c *client.Client, how client.Closed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed[c.ID()] = how
}

func (s *goEcho) endings() []client.Closed {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []client.Closed
	for _, how := range s.closed {
		out = append(out, how)
	}
	return out
}

// startServer serves goEcho at /echo and returns the server, the service
// and the address.
func startServer(t *testing.T, tune func(*config.Endpoint)) (*gateway.Server, *goEcho, string) {
	t.Helper()
	ep := config.DefaultEndpoint("/echo", "")
	ep.SendQueue = 16
	if tune != nil {
		tune(&ep)
	}
	svc := &goEcho{closed: map[string]client.Closed{}}
	srv := gatewaytest.Start(t, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{"/echo": svc}, nil)
	return srv.Server, svc, srv.Addr
}

func shutdown(srv *gateway.Server, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return srv.Shutdown(ctx)
}

func TestShutdownClosesClientsWith1001AndLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	srv, svc, addr := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for range 10 {
		c, _, err := websocket.Dial(ctx, "ws://"+addr+"/echo", nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(ctx, websocket.MessageText, []byte("x"))
		if _, got, err := c.Read(ctx); err != nil || string(got) != "x" {
			t.Fatalf("echo: %q %v", got, err)
		}
		conns = append(conns, c)
	}
	results := make(chan websocket.StatusCode, len(conns))
	for _, c := range conns {
		go func() {
			_, _, err := c.Read(ctx)
			results <- websocket.CloseStatus(err)
		}()
	}
	if err := shutdown(srv, 5*time.Second); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for range conns {
		if code := <-results; code != websocket.StatusGoingAway {
			t.Errorf("client saw %d, want 1001", code)
		}
	}
	if n := len(svc.endings()); n != len(conns) {
		t.Errorf("Closed called for %d clients, want %d", n, len(conns))
	}
	for _, c := range conns {
		c.CloseNow()
	}
	waitGoroutines(t, before)
}

// waitGoroutines waits for the goroutine count to fall back to n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines left, %d before:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	_, _, addr := startServer(t, func(ep *config.Endpoint) { ep.Origins = []string{"https://good.example"} })
	valid := func() http.Header {
		return http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"}}
	}
	tests := []struct {
		name   string
		method string
		query  string
		edit   func(http.Header)
		status int
		header string
	}{
		{"POST", http.MethodPost, "", nil, http.StatusMethodNotAllowed, "Allow: GET"},
		{"plain GET", http.MethodGet, "", func(h http.Header) { h.Del("Upgrade") }, http.StatusUpgradeRequired, ""},
		{"no key", http.MethodGet, "", func(h http.Header) { h.Del("Sec-Websocket-Key") }, http.StatusBadRequest, ""},
		{"short key", http.MethodGet, "", func(h http.Header) { h.Set("Sec-Websocket-Key", "c2hvcnQ=") }, http.StatusBadRequest, ""},
		{"version 8", http.MethodGet, "", func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, http.StatusUpgradeRequired, "Sec-Websocket-Version: 13"},
		{"foreign origin", http.MethodGet, "", func(h http.Header) { h.Set("Origin", "https://evil.example") }, http.StatusForbidden, ""},
		{"service refuses", http.MethodGet, "?deny=1", nil, http.StatusPaymentRequired, ""},
		{"allowed origin", http.MethodGet, "", func(h http.Header) { h.Set("Origin", "https://good.example") }, http.StatusSwitchingProtocols, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := valid()
			if tt.edit != nil {
				tt.edit(h)
			}
			status, head := rawRequest(t, addr, tt.method, "/echo"+tt.query, h)
			if status != tt.status || !strings.Contains(head, tt.header) {
				t.Errorf("got %d with headers\n%s\nwant %d with %q", status, head, tt.status, tt.header)
			}
		})
	}
}

// rawRequest sends one HTTP request on a fresh connection and returns the
// response status and header block.
func rawRequest(t *testing.T, addr, method, path string, h http.Header) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, _ := http.NewRequest(method, "http://"+addr+path, nil)
	req.Header = h
	req.Write(conn)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	resp.Header.Write(&b)
	return resp.StatusCode, b.String()
}

func TestKeepalivePingsAndIdleTimeout(t *testing.T) {
	_, svc, addr := startServer(t, func(ep *config.Endpoint) {
		ep.PingInterval = 50 * time.Millisecond
		ep.IdleTimeout = 300 * time.Millisecond
	})
	conn, _, _, err := ws.Dial(context.Background(), "ws://"+addr+"/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(conn)
	if err != nil || h.OpCode != ws.OpPing {
		t.Fatalf("first frame: %+v %v, want a ping", h, err)
	}
	// Answer nothing: the server must give up on the silent client.
	if _, err := io.Copy(io.Discard, conn); err != nil {
		t.Fatalf("waiting for the server to close: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(svc.endings()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := svc.endings(); len(got) != 1 || got[0].Code != ws.StatusAbnormalClosure || got[0].Reason != "idle timeout" {
		t.Errorf("endings %+v, want one 1006 idle timeout", got)
	}
}

func TestStaticFilesAndHealth(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/index.html", "<h1>hi</h1>")
	cfg := &config.Config{Endpoints: []config.Endpoint{config.DefaultEndpoint("/echo", "")}, Static: []config.Static{{Prefix: "/", Dir: dir}}}
	srv := gatewaytest.Start(t, cfg, map[string]gateway.Service{"/echo": &goEcho{closed: map[string]client.Closed{}}}, nil)
	for path, want := range map[string]string{"/": "<h1>hi</h1>", "/healthz": "ok\n"} {
		resp, err := http.Get("http://" + srv.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != want {
			t.Errorf("%s: %q", path, body)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAdminEndpointsAnswerOnlyLoopback(t *testing.T) {
	srv, _, _ := startServer(t, nil)
	srv.HandleAdmin("/admin/ping", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong") }))
	for remote, want := range map[string]int{"127.0.0.1:4000": 200, "[::1]:4000": 200, "10.1.2.3:4000": 403, "192.168.1.9:1": 403} {
		r := httptest.NewRequest("GET", "/admin/ping", nil)
		r.RemoteAddr, r.Host = remote, "127.0.0.1:8080"
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("from %s: %d, want %d", remote, w.Code, want)
		}
	}
}
