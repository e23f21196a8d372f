// Package gatewaytest runs a gateway on a loopback port for tests and
// benchmarks, as net/http/httptest does for HTTP servers.
package gatewaytest

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/metrics"
)

// Server is a gateway serving on 127.0.0.1.
type Server struct {
	*gateway.Server
	// Addr is host:port of the listener.
	Addr string
	// Metrics are the server's collectors.
	Metrics *metrics.Metrics
}

// URL returns the ws:// URL of path on the server.
func (s *Server) URL(path string) string { return "ws://" + s.Addr + path }

// Start serves cfg's endpoints with services on a loopback port. The server
// is shut down when the test or benchmark ends. m may be nil.
func Start(tb testing.TB, cfg *config.Config, services map[string]gateway.Service, m *metrics.Metrics) *Server {
	tb.Helper()
	if m == nil {
		m = metrics.New()
	}
	srv, err := gateway.New(cfg, services, slog.New(slog.DiscardHandler), m)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(ln)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return &Server{Server: srv, Addr: ln.Addr().String(), Metrics: m}
}
