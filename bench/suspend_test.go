package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moongate/moongate/bench/load"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/db"
	"github.com/moongate/moongate/gateway/db/dbtest"
	"github.com/moongate/moongate/gateway/gatewaytest"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/gateway/outbound"
	"github.com/moongate/moongate/scripting"
)

const (
	// callDelay is how long each call a suspended handler makes takes.
	callDelay = 20 * time.Millisecond
	// suspendClients are the clients of the suspended-calls benchmark,
	// one message in flight each.
	suspendClients = 100
	// pgPoolConns is the PostgreSQL pool of the suspended-calls benchmark.
	pgPoolConns = 64
)

// suspendScript answers every message after one call that takes
// callDelay: an HTTP GET of one of options.urls in turn, or a pg_sleep on
// database main.
const suspendScript = `
local urls, call, n = options.urls, options.call, 0
return { message = function(c, data)
  if call == "http" then
    n = n + 1
    local res = http.get(urls[n % #urls + 1])
    if res.status ~= 200 then error("status " .. res.status) end
  else
    db.query("main", "SELECT pg_sleep(0.02)")
  end
  c:send(data)
end }
`

// BenchmarkSuspendedCalls measures one Lua state serving 100 clients over
// real sockets, each sending a message and waiting for its reply, where
// every message makes one call that takes 20 ms: an http.get to a local
// server that waits 20 ms before answering, and a db.query of
// pg_sleep(0.02) on PostgreSQL (skipped when it is absent). b.N is the
// number of messages. It reports throughput (msg/s), p50 and p99
// latency, the ratio of the throughput to what blocking calls allow one
// state (x-blocking: 1/20 ms = 50 msg/s), and the most the calls'
// connections allow (cap-msg/s: connections/20 ms; the HTTP client keeps at
// most outbound.MaxConnsPerHost to one host, the database pool its size).
// Bars (issue 11): x-blocking ≥ 50, p99 ≤ 60 ms. call=http,servers=2
// spreads the calls over two servers (two hosts to the HTTP client), so
// that its connections do not bound them: the difference shows what the
// cap of 64 costs.
func BenchmarkSuspendedCalls(b *testing.B) {
	for _, servers := range []int{1, 2} {
		name := "call=http"
		if servers > 1 {
			name += ",servers=" + strconv.Itoa(servers)
		}
		b.Run(name, func(b *testing.B) {
			var urls []string
			dials := new(atomic.Int64)
			for range servers {
				urls = append(urls, slowHTTP(b, callDelay, dials))
			}
			ep := suspendEndpoint(b, "http", urls)
			ep.HTTP.Allow = urls
			runSuspended(b, ep, nil, min(suspendClients, servers*outbound.MaxConnsPerHost), "outbound.MaxConnsPerHost", dials)
		})
	}
	b.Run("call=postgres", func(b *testing.B) {
		pg := openPostgres(b, pgPoolConns)
		ep := suspendEndpoint(b, "postgres", nil)
		ep.Databases = []string{"main"}
		runSuspended(b, ep, dbtest.Set{"main": pg}, min(suspendClients, pgPoolConns), "the pool's max_conns", nil)
	})
}

// suspendEndpoint returns a one-state endpoint serving suspendScript.
func suspendEndpoint(b *testing.B, call string, urls []string) config.Endpoint {
	script := filepath.Join(b.TempDir(), "suspend.lua")
	if err := os.WriteFile(script, []byte(suspendScript), 0o644); err != nil {
		b.Fatal(err)
	}
	ep := config.DefaultEndpoint("/ws", script)
	ep.States = 1
	ep.Options = map[string]any{"call": call, "urls": urls}
	return ep
}

// runSuspended serves ep, runs b.N messages over suspendClients clients
// and reports. conns is how many calls can be in the air at once and
// limit what bounds them; dials, if not nil, counts the connections the
// calls opened (reported per message, as dials/msg).
func runSuspended(b *testing.B, ep config.Endpoint, dbs scripting.Databases, conns int, limit string, dials *atomic.Int64) {
	var opts []scripting.Option
	if dbs != nil {
		opts = append(opts, scripting.WithDatabases(dbs))
	}
	url := serveService(b, ep, opts...)
	clients, err := load.DialAll(context.Background(), &load.Dialer{}, suspendClients, 16, func(int) string { return url }, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { load.CloseAll(clients) })
	closedLoop(b, clients, 2, load.NewHistogram()) // warm up: the calls' connections open
	perClient := max(b.N/suspendClients, 1)
	hist := load.NewHistogram()
	b.ResetTimer()
	dialed := int64(0)
	if dials != nil {
		dialed = dials.Load()
	}
	elapsed := closedLoop(b, clients, perClient, hist)
	b.StopTimer()
	if dials != nil {
		b.ReportMetric(float64(dials.Load()-dialed)/float64(perClient*suspendClients), "dials/msg")
	}
	lat := hist.Summary()
	rate := float64(perClient*suspendClients) / elapsed.Seconds()
	blocking := float64(time.Second / callDelay)
	capRate := float64(conns) * blocking
	b.ReportMetric(rate, "msg/s")
	b.ReportMetric(ms(lat.P50), "p50-ms")
	b.ReportMetric(ms(lat.P99), "p99-ms")
	b.ReportMetric(rate/blocking, "x-blocking")
	b.ReportMetric(capRate, "cap-msg/s")
	b.ReportMetric(0, "ns/op")
	if conns < suspendClients && rate > 0.8*capRate {
		b.Logf("throughput %.0f msg/s is near the cap of %d calls in the air at once (%s): at most %.0f msg/s for %d clients, so p50 includes a wait for a connection",
			rate, conns, limit, capRate, suspendClients)
	}
}

// closedLoop has every client send n messages, each once the reply to the
// last is in, all clients at once, records each round trip in hist and
// returns the wall time.
func closedLoop(b testing.TB, clients []*load.Conn, n int, hist *load.Histogram) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := []byte(fmt.Sprintf("message from client %d", i))
			for range n {
				t := time.Now()
				if err := c.WriteText(msg); err != nil {
					b.Error(err)
					return
				}
				if _, err := c.Read(); err != nil {
					b.Error(err)
					return
				}
				hist.Record(i, time.Since(t))
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// serveService runs ep's script in a gateway on a loopback port and
// returns its ws:// URL.
func serveService(b testing.TB, ep config.Endpoint, opts ...scripting.Option) string {
	m := metrics.New()
	svc, err := scripting.New(ep, slog.New(slog.DiscardHandler), m.Endpoint(ep.Path), opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Close) // after the server's shutdown, registered next
	srv := gatewaytest.Start(b, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{ep.Path: svc}, m)
	return srv.URL(ep.Path)
}

// slowHTTP serves, on a loopback port, an HTTP server that answers every
// request after delay, counting the connections it accepts in dials, and
// returns its http:// URL.
func slowHTTP(b *testing.B, delay time.Duration, dials *atomic.Int64) string {
	ln := listen(b)
	srv := &http.Server{ConnState: func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			w.Write([]byte("ok"))
		case <-r.Context().Done():
		}
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// openPostgres opens the test PostgreSQL server as database main with a
// pool of maxConns, closed when the benchmark ends. It skips the
// benchmark when the server cannot be reached (fails it when CI=true).
func openPostgres(b *testing.B, maxConns int) db.DB {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	d, err := db.Open(ctx, db.Config{Name: "main", Driver: "postgres", DSN: dbtest.PostgresDSN(), MaxConns: maxConns})
	if err == nil {
		if _, err = d.Query(ctx, "SELECT 1"); err != nil {
			d.Close()
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatalf("PostgreSQL at %s: %v", dbtest.PostgresDSN(), err)
		}
		b.Skipf("PostgreSQL at %s unreachable, skipping (set CI=true to fail instead): %v", dbtest.PostgresDSN(), err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}
