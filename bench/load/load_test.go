package load

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moongate/moongate/bench/baseline"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/gatewaytest"
	"github.com/moongate/moongate/scripting"
)

// startScript serves script at /ws in a gateway and returns its URL.
func startScript(t *testing.T, script string, options map[string]any) string {
	t.Helper()
	ep := config.DefaultEndpoint("/ws", script)
	ep.States, ep.Options = 2, options
	svc, err := scripting.New(ep, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	srv := gatewaytest.Start(t, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{"/ws": svc}, nil)
	return srv.URL("/ws")
}

func TestEchoCountsEveryRoundTrip(t *testing.T) {
	url := startScript(t, "../../scripts/echo.lua", nil)
	ctx := context.Background()
	e, err := NewEcho(ctx, &Dialer{}, EchoConfig{URL: url, Conns: 8, Size: 64, InFlight: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.Run(ctx, 200*time.Millisecond)
	e.Run(ctx, 200*time.Millisecond)
	r := e.Result()
	if r.Sent == 0 || r.Received != r.Sent || r.Lost != 0 || r.Errors != 0 || r.Latency.Count != r.Received {
		t.Fatalf("result %+v", r)
	}
	if r.Latency.P50 <= 0 || r.Latency.P99 < r.Latency.P50 || r.Latency.Max < r.Latency.P99 {
		t.Errorf("latency %+v", r.Latency)
	}
}

func TestEchoCountsLostMessages(t *testing.T) {
	script := filepath.Join(t.TempDir(), "lossy.lua")
	// Answers every message but the third.
	os.WriteFile(script, []byte(`local n = 0
return { message = function(c, data) n = n + 1 if n ~= 3 then c:send(data) end end }`), 0o644)
	for _, rate := range []float64{1000, 0} { // paced, and closed loop
		url := startScript(t, script, nil)
		ctx := context.Background()
		e, err := NewEcho(ctx, &Dialer{}, EchoConfig{URL: url, Conns: 1, Size: 32, InFlight: 4, Rate: rate, Drain: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		e.Run(ctx, 100*time.Millisecond)
		e.Close()
		if r := e.Result(); r.Lost != 1 || r.Received != r.Sent-1 {
			t.Fatalf("rate %v: result %+v, want one lost", rate, r)
		}
	}
}

func TestRoomsDeliverToEveryMember(t *testing.T) {
	chatURL := startScript(t, "../../scripts/chat/chat.lua", map[string]any{"rate_limit": 100000})
	base := baseline.Start(t)
	ctx := context.Background()
	for _, target := range []struct {
		url   string
		proto Protocol
	}{{chatURL, Chat{}}, {base + "/room", Raw{}}} {
		r, err := NewRooms(ctx, &Dialer{}, "fanout", RoomConfig{URL: target.url, Proto: target.proto,
			Members: 40, Rooms: 4, Publishers: 2, Rate: 400, Parallel: 8})
		if err != nil {
			t.Fatal(err)
		}
		r.Run(ctx, 200*time.Millisecond)
		r.Close()
		res := r.Result()
		// Each message reaches the 10 measured members of its room.
		if res.Sent == 0 || res.Received != 10*res.Sent || res.Lost != 0 || res.Errors != 0 {
			t.Errorf("%s: result %+v", target.url, res)
		}
	}
}

func TestChatRateLimitShowsAsErrors(t *testing.T) {
	url := startScript(t, "../../scripts/chat/chat.lua", map[string]any{"rate_limit": 3})
	ctx := context.Background()
	r, err := NewRooms(ctx, &Dialer{}, "chat", RoomConfig{URL: url, Proto: Chat{}, Members: 2, EveryonePublishes: true, Rate: 200, Drain: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	r.Run(ctx, 100*time.Millisecond)
	r.Close()
	if res := r.Result(); res.Errors == 0 || res.Lost == 0 {
		t.Fatalf("result %+v, want refused messages counted", res)
	}
}

func TestIdleReadsServerMemory(t *testing.T) {
	base := baseline.Start(t)
	ctx := context.Background()
	l, err := NewIdle(ctx, &Dialer{Sources: LoopbackSources(2)}, IdleConfig{URL: base + "/echo", Conns: 50, PID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	l.Run(ctx, 10*time.Millisecond)
	l.Close()
	if r := l.Result(); r.Conns != 50 || r.RSSBefore <= 0 || r.RSSAfter <= 0 || r.Errors != 0 {
		t.Fatalf("result %+v", r)
	}
}
