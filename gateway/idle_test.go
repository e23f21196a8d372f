package gateway_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/bench/load"
	"github.com/moongate/moongate/gateway/config"
)

// dialN opens n connections to url.
func dialN(t *testing.T, url string, n int) []*websocket.Conn {
	t.Helper()
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		c, _, err := websocket.Dial(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		conns[i] = c
	}
	return conns
}

func echoOnce(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.Read(ctx); err != nil || string(got) != msg {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

// Idle connections wait in the poller: the gateway holds no goroutine for
// them, and each answers at once when a message finally comes.
func TestIdleConnectionsHoldNoGoroutines(t *testing.T) {
	_, _, addr := startServer(t, nil)
	before := runtime.NumGoroutine()
	const n = 200
	conns := dialN(t, "ws://"+addr+"/echo", n)
	for i, c := range conns {
		echoOnce(t, c, "hello "+string(rune('a'+i%26)))
	}
	// The client side (coder/websocket) keeps a goroutine or two per
	// connection of its own; the gateway's readers and writers must be gone.
	var held int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if held = runtime.NumGoroutine() - before; held <= n {
			break
		}
	}
	if held > n {
		t.Fatalf("%d goroutines for %d idle connections", held, n)
	}
	for _, c := range conns {
		echoOnce(t, c, "woken")
	}
}

// A parked connection is still reaped by the idle timeout, and still
// answers the server's close on shutdown.
func TestParkedConnectionsTimeOutAndShutDown(t *testing.T) {
	srv, svc, addr := startServer(t, func(ep *config.Endpoint) { ep.IdleTimeout = 1500 * time.Millisecond })
	quiet := dialN(t, "ws://"+addr+"/echo", 1)[0]
	chatty := dialN(t, "ws://"+addr+"/echo", 1)[0]
	for range 8 { // ~2 s of a message every 250 ms: never idle long enough
		echoOnce(t, chatty, "still here")
		time.Sleep(250 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := quiet.Read(ctx); err == nil {
		t.Fatal("the quiet connection was not closed by the idle timeout")
	}
	endings := svc.endings()
	if len(endings) != 1 || endings[0].Reason != "idle timeout" {
		t.Fatalf("endings %+v, want one idle timeout", endings)
	}
	time.Sleep(700 * time.Millisecond) // let chatty park
	go shutdown(srv, 5*time.Second)
	_, _, err := chatty.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("parked connection at shutdown: %v, want 1001", err)
	}
}

// Pings keep flowing to parked connections, and the pongs that wake them
// do not keep a goroutine: the connection parks again.
func TestPongsDoNotKeepGoroutines(t *testing.T) {
	_, _, addr := startServer(t, func(ep *config.Endpoint) { ep.PingInterval = 500 * time.Millisecond })
	before := runtime.NumGoroutine()
	const n = 100
	conns, err := load.DialAll(context.Background(), &load.Dialer{}, n, 8, func(int) string { return "ws://" + addr + "/echo" }, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { load.CloseAll(conns) })
	var pings atomic.Int64
	for _, c := range conns {
		c.OnPing = func() { pings.Add(1) }
		go func() { // one goroutine a connection, client side: it answers pings
			for {
				if _, err := c.Read(); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(2500 * time.Millisecond) // four pings each or so
	if got := pings.Load(); got < 3*n {
		t.Fatalf("%d pings reached %d connections in 2.5 s", got, n)
	}
	// A pinged connection holds a writer for controlLinger and a reader for
	// wakeGrace after each ping: a fraction of the time, not all of it.
	if held := runtime.NumGoroutine() - before; held > n+n/2 {
		t.Fatalf("%d goroutines for %d connections pinged while idle (the client side holds %d)", held, n, n)
	}
}
