package bench

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/moongate/moongate/bench/baseline"
	"github.com/moongate/moongate/bench/load"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/gatewaytest"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/scripting"
)

// BenchmarkEchoLuaVsBaseline measures echo round trips through the shipped
// Lua echo service and through a bare gobwas/ws echo server, in the same
// run, alternating between them in blocks so that machine noise hits both
// alike. It reports each side's time per round trip and the ratio of
// throughputs (lua/baseline; 1.0 means the scripted gateway is as fast).
func BenchmarkEchoLuaVsBaseline(b *testing.B) {
	for _, states := range []int{1, runtime.NumCPU()} {
		b.Run("states="+strconv.Itoa(states), func(b *testing.B) {
			luaAddr := serveLuaEcho(b, states)
			baseAddr := serve(b, &baseline.Echo{})
			compareEcho(b, luaAddr, baseAddr, 32, 64)
		})
	}
}

// compareEcho runs b.N round trips of size-byte messages on each server
// over conns connections (one message in flight on each) and reports.
func compareEcho(b *testing.B, luaAddr, baseAddr string, conns, size int) {
	lua, base := dialAll(b, luaAddr, conns), dialAll(b, baseAddr, conns)
	msg := make([]byte, size)
	roundTrips(b, lua, msg, 100) // warm up both
	roundTrips(b, base, msg, 100)
	const blocks = 10
	perBlock := max(b.N/blocks/conns, 1)
	var luaTime, baseTime time.Duration
	b.ResetTimer()
	for range blocks {
		baseTime += roundTrips(b, base, msg, perBlock)
		luaTime += roundTrips(b, lua, msg, perBlock)
	}
	b.StopTimer()
	total := float64(blocks * perBlock * conns)
	b.ReportMetric(float64(luaTime.Nanoseconds())/total, "lua-ns/rt")
	b.ReportMetric(float64(baseTime.Nanoseconds())/total, "baseline-ns/rt")
	b.ReportMetric(float64(baseTime)/float64(luaTime), "lua/baseline")
	b.ReportMetric(0, "ns/op")
}

// roundTrips sends n messages on every connection, waiting for each echo,
// all connections at once, and returns the wall time.
func roundTrips(b *testing.B, conns []net.Conn, msg []byte, n int) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				if err := wsutil.WriteClientMessage(c, ws.OpText, msg); err != nil {
					b.Error(err)
					return
				}
				if _, err := wsutil.ReadServerText(c); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

// serveLuaEcho runs scripts/echo.lua in a gateway on a loopback port.
func serveLuaEcho(b *testing.B, states int) string {
	script, _ := filepath.Abs("../scripts/echo.lua")
	ep := config.DefaultEndpoint("/echo", script)
	ep.States, ep.MaxMessageBytes = states, 1<<20
	m := metrics.New()
	svc, err := scripting.New(ep, slog.New(slog.DiscardHandler), m.Endpoint(ep.Path))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Close) // after the server's shutdown, registered next
	srv := gatewaytest.Start(b, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{ep.Path: svc}, m)
	return srv.Addr + ep.Path
}

// serve runs h on a loopback port with net/http.
func serve(b *testing.B, h http.Handler) string {
	ln := listen(b)
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String() + "/echo"
}

func listen(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	return ln
}

func dialAll(b *testing.B, addr string, n int) []net.Conn {
	conns := make([]net.Conn, n)
	for i := range conns {
		c, _, _, err := ws.Dial(context.Background(), "ws://"+addr)
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = c
		b.Cleanup(func() { c.Close() })
	}
	return conns
}

// BenchmarkEchoCorePath measures what one message costs the Go core on its
// way through: read the frame, dispatch it to the Lua echo script, queue
// the reply, write it. The client (bench/load) allocates nothing, so
// allocs/op are the gateway's (and the Lua call's) per message.
func BenchmarkEchoCorePath(b *testing.B) {
	conns, err := load.DialAll(context.Background(), &load.Dialer{}, 1, 1, func(int) string { return "ws://" + serveLuaEcho(b, 1) }, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	c := conns[0]
	b.Cleanup(func() { c.Close() })
	msg := []byte("a message of about sixty-four bytes, the size of a chat line..")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := c.WriteText(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(); err != nil {
			b.Fatal(err)
		}
	}
}
