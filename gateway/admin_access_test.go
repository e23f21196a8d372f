package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/metrics"
)

// outsideIP returns an address of this machine that is not loopback, or
// skips the test when it has none.
func outsideIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("interface addresses: %v", err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	t.Skip("this machine has no address but loopback: cannot reach the gateway from outside")
	return ""
}

// startEverywhere serves goEcho at /echo on every address of the machine,
// with an admin path /admin/ping, the admin token set to token.
func startEverywhere(t *testing.T, token string) (srv *gateway.Server, port string) {
	t.Helper()
	svc := &goEcho{closed: map[string]client.Closed{}}
	cfg := &config.Config{Endpoints: []config.Endpoint{config.DefaultEndpoint("/echo", "")}}
	srv, err := gateway.New(cfg, map[string]gateway.Service{"/echo": svc}, slog.New(slog.DiscardHandler), metrics.New())
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetAdminToken(token); err != nil {
		t.Fatal(err)
	}
	srv.HandleAdmin("/admin/ping", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong") }))
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return srv, port
}

func TestAdminAnswersLoopbackAndTheTokenOnly(t *testing.T) {
	const token = "0123456789abcdef-admin"
	outside := outsideIP(t)
	_, port := startEverywhere(t, token)
	get := func(host, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+net.JoinHostPort(host, port)+"/admin/ping", nil)
		switch {
		case strings.HasPrefix(auth, "basic:"):
			req.SetBasicAuth("admin", strings.TrimPrefix(auth, "basic:"))
		case auth != "":
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Www-Authenticate")
	}
	for _, tc := range []struct {
		name, host, auth string
		want             int
	}{
		{"loopback, no token", "127.0.0.1", "", 200},
		{"outside, no token", outside, "", 401},
		{"outside, wrong token", outside, "Bearer nope-nope-nope-nope", 401},
		{"outside, bearer token", outside, "Bearer " + token, 200},
		{"outside, basic token", outside, "basic:" + token, 200},
		{"loopback, wrong token", "127.0.0.1", "Bearer nope-nope-nope-nope", 401},
	} {
		status, challenge := get(tc.host, tc.auth)
		if status != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, status, tc.want)
		}
		if status == 401 && !strings.HasPrefix(challenge, "Basic") {
			t.Errorf("%s: 401 without a Basic challenge: %q", tc.name, challenge)
		}
	}
}

func TestAdminWithoutATokenRefusesOutsideWith403(t *testing.T) {
	outside := outsideIP(t)
	_, port := startEverywhere(t, "")
	req, _ := http.NewRequest("GET", "http://"+net.JoinHostPort(outside, port)+"/admin/ping", nil)
	req.Header.Set("Authorization", "Bearer 0123456789abcdef-admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("outside with no token set: %d, want 403", resp.StatusCode)
	}
}

func TestAdminTokenTooShortIsRefused(t *testing.T) {
	srv, _ := startEverywhere(t, "")
	if err := srv.SetAdminToken("short"); err == nil {
		t.Error("a 5-byte token was taken")
	}
}

func TestConnectionsCountsLiveClientsPerEndpoint(t *testing.T) {
	srv, _, addr := startServer(t, nil)
	if got := srv.Connections(); len(got) != 1 || got["/echo"] != 0 {
		t.Fatalf("before: %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitCount := func(want int) {
		t.Helper()
		for srv.Connections()["/echo"] != want {
			select {
			case <-ctx.Done():
				t.Fatalf("connections: %v, want %d", srv.Connections(), want)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitCount(1)
	c.Close(websocket.StatusNormalClosure, "")
	waitCount(0)
}
