package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/gatewaytest"
)

// goHTTP is goEcho that also answers plain HTTP, in Go: the second
// implementation of gateway.HTTPHandler beside the Lua one. /svc/wait
// waits until its client goes and counts that.
type goHTTP struct {
	*goEcho
	serves atomic.Bool
	waited chan struct{} // closed by the first /svc/wait whose client went
	gone   atomic.Int32
}

func (s *goHTTP) ServesHTTP() bool { return s.serves.Load() }

func (s *goHTTP) HandleHTTP(ctx context.Context, r *gateway.HTTPRequest) *gateway.HTTPResponse {
	if r.Path == "/svc/wait" {
		close(s.waited)
		<-ctx.Done()
		s.gone.Add(1)
		return &gateway.HTTPResponse{Status: 200, Body: []byte("too late")}
	}
	body := fmt.Sprintf("%s %s %s q=%s h=%s", r.Method, r.Path, r.Body, r.Query["q"], r.Header["X-Test"])
	return &gateway.HTTPResponse{Status: 202, Body: []byte(body),
		Header: http.Header{"X-Svc": {"yes"}, "Content-Length": {"1"}, "Connection": {"upgrade"}}}
}

func startHTTPService(t *testing.T, cfg *config.Config) (*goHTTP, string) {
	t.Helper()
	ep := config.DefaultEndpoint("/svc", "")
	ep.MaxMessageBytes = 64
	cfg.Endpoints = []config.Endpoint{ep}
	svc := &goHTTP{goEcho: &goEcho{closed: map[string]client.Closed{}}, waited: make(chan struct{})}
	svc.serves.Store(true)
	return svc, gatewaytest.Start(t, cfg, map[string]gateway.Service{"/svc": svc}, nil).Addr
}

// do makes one request and returns status, body and header.
func do(t *testing.T, method, url, host, body string, h http.Header) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestHTTPHandlerRoutes(t *testing.T) {
	svc, addr := startHTTPService(t, &config.Config{})
	base := "http://" + addr
	status, body, h := do(t, "POST", base+"/svc/a/b?q=1", "", "data", http.Header{"X-Test": {"t"}})
	if want := "POST /svc/a/b data q=[1] h=[t]"; status != 202 || body != want || h.Get("X-Svc") != "yes" {
		t.Errorf("below the endpoint: %d %q %v, want 202 %q", status, body, h, want)
	}
	if h.Get("Content-Length") != fmt.Sprint(len(body)) || h.Get("Connection") == "upgrade" {
		t.Errorf("the service's framing headers were not dropped: %v", h)
	}
	if status, body, _ := do(t, "GET", base+"/svc", "", "", nil); status != 202 || !strings.HasPrefix(body, "GET /svc ") {
		t.Errorf("the endpoint's path: %d %q", status, body)
	}
	for _, path := range []string{"/svcx", "/other"} {
		if status, _, _ := do(t, "GET", base+path, "", "", nil); status != 404 {
			t.Errorf("%s: %d, want 404", path, status)
		}
	}
	if status, _, _ := do(t, "GET", base+"/healthz", "", "", nil); status != 200 {
		t.Errorf("/healthz: %d", status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/svc", nil)
	if err != nil {
		t.Fatalf("an upgrade still reaches the endpoint: %v", err)
	}
	c.CloseNow()

	if status, _, _ := do(t, "POST", base+"/svc/x", "", strings.Repeat("x", 65), nil); status != http.StatusRequestEntityTooLarge {
		t.Errorf("a body over max_message_bytes: %d, want 413", status)
	}
	chunked := io.MultiReader(strings.NewReader(strings.Repeat("x", 40)), strings.NewReader(strings.Repeat("x", 40)))
	req, _ := http.NewRequestWithContext(ctx, "POST", base+"/svc/x", chunked) // no Content-Length: read and cut
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a chunked body over max_message_bytes: %d, want 413", resp.StatusCode)
	}

	svc.serves.Store(false) // as a script without an http handler
	if status, _, h := do(t, "GET", base+"/svc", "", "", nil); status != http.StatusUpgradeRequired || h.Get("Upgrade") != "websocket" {
		t.Errorf("not serving HTTP, the endpoint's path: %d, want 426", status)
	}
	if status, _, _ := do(t, "GET", base+"/svc/a", "", "", nil); status != 404 {
		t.Errorf("not serving HTTP, below the endpoint: %d, want 404", status)
	}
}

func TestHTTPHandlerHostAndLimits(t *testing.T) {
	_, addr := startHTTPService(t, &config.Config{Limits: config.Limits{MaxConnections: 1}})
	base := "http://" + addr
	for _, path := range []string{"/svc", "/svc/a"} {
		if status, _, _ := do(t, "GET", base+path, "evil.example", "", nil); status != http.StatusMisdirectedRequest {
			t.Errorf("%s with a foreign Host: %d, want 421", path, status)
		}
	}
	// The one connection: once the requests above have let theirs go (a
	// 421 closes its connection, which a loaded machine may not have
	// seen through yet: until then the dial gets 503, and tries again).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var c *websocket.Conn
	for {
		var resp *http.Response
		var err error
		c, resp, err = websocket.Dial(ctx, "ws://"+addr+"/svc", nil)
		if err == nil {
			break
		}
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	defer c.CloseNow()
	for _, path := range []string{"/svc", "/svc/a"} {
		status, _, h := do(t, "GET", base+path, "", "", nil)
		if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
			t.Errorf("%s past max_connections: %d %v, want 503 with Retry-After", path, status, h)
		}
	}
}

func TestHTTPHandlerClientGone(t *testing.T) {
	svc, addr := startHTTPService(t, &config.Config{})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(nc, "GET /svc/wait HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	select {
	case <-svc.waited:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the service")
	}
	nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for svc.gone.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the service's context did not end when its client went")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
