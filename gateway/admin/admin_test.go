package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/admin"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/gatewaytest"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/logring"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/gateway/wsproto"
)

// lobby is a Go service: every client joins the room "lobby" under the
// nick its ?nick= gives; each message is timed in the handler histogram.
type lobby struct {
	hub     *hub.Hub
	metrics *metrics.Endpoint

	mu      sync.Mutex
	version string
	err     string
}

func (s *lobby) Connect(_ context.Context, c *client.Client) error {
	if n := c.Request().Query.Get("nick"); n != "" {
		c.SetAttr("nick", n)
	}
	s.hub.Add(c)
	s.hub.Join("lobby", c)
	return nil
}

func (s *lobby) Message(_ context.Context, c *client.Client, m wsproto.Message) {
	start := time.Now()
	c.Send(wsproto.Frame(m.Op, m.Data))
	s.metrics.Handler("message").Observe(time.Since(start).Seconds())
}

func (s *lobby) Closed(c *client.Client, _ client.Closed) { s.hub.Remove(c) }

// ScriptStatus and Hub make lobby the console's Scripts.
func (s *lobby) ScriptStatus() (admin.ConfigState, []admin.EndpointState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return admin.ConfigState{File: "moongate.yaml"},
		[]admin.EndpointState{{Path: "/lobby", Script: "lobby.lua", Version: s.version, LastError: s.err}}
}

func (s *lobby) Hub(endpoint string) *hub.Hub {
	if endpoint == "/lobby" {
		return s.hub
	}
	return nil
}

func (s *lobby) set(version, err string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version, s.err = version, err
}

type fixture struct {
	console *admin.Console
	addr    string
	svc     *lobby
	log     *slog.Logger
	ring    *logring.Ring
	stopAll context.CancelFunc
}

func start(t *testing.T) *fixture { return startWith(t, admin.Options{}) }

// startWith is start with opts (Scripts, Connections, Metrics, Logs and
// Log filled in).
func startWith(t *testing.T, opts admin.Options) *fixture {
	t.Helper()
	m := metrics.New()
	svc := &lobby{hub: hub.New(), metrics: m.Endpoint("/lobby"), version: "v1"}
	srv := gatewaytest.Start(t, &config.Config{Endpoints: []config.Endpoint{config.DefaultEndpoint("/lobby", "")}},
		map[string]gateway.Service{"/lobby": svc}, m)
	ring := logring.New(20, nil)
	log := slog.New(ring.Handler(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opts.Scripts, opts.Connections, opts.Metrics, opts.Logs, opts.Log = svc, srv.Server, m, ring, log
	console := admin.New(ctx, opts)
	srv.Server.HandleAdmin("/admin/", console)
	return &fixture{console: console, addr: srv.Addr, svc: svc, log: log, ring: ring, stopAll: cancel}
}

func (f *fixture) state(t *testing.T) admin.Snapshot {
	t.Helper()
	resp, err := http.Get("http://" + f.addr + "/admin/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("state: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var snap admin.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctx10(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestStateShowsEndpointsConnectionsRoomsLatencyAndLogs(t *testing.T) {
	f := start(t)
	ctx := ctx10(t)
	c, _, err := websocket.Dial(ctx, "ws://"+f.addr+"/lobby?nick=ada", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte("hi"))
	if _, _, err := c.Read(ctx); err != nil {
		t.Fatal(err)
	}
	f.log.Error("script error", "endpoint", "/lobby", "err", "lobby.lua:7: attempt to index a nil value")
	f.log.Info("an ordinary line")

	var snap admin.Snapshot
	eventually(t, "one connection counted", func() bool {
		snap = f.state(t)
		return len(snap.Endpoints) == 1 && snap.Endpoints[0].Connections == 1
	})
	ep := snap.Endpoints[0]
	if ep.Path != "/lobby" || ep.Version != "v1" || snap.Config.File != "moongate.yaml" {
		t.Errorf("endpoint %+v config %+v", ep, snap.Config)
	}
	if ep.RoomCount != 1 || len(ep.Rooms) != 1 || ep.Rooms[0].Name != "lobby" || ep.Rooms[0].Count != 1 ||
		len(ep.Rooms[0].Members) != 1 || ep.Rooms[0].Members[0].Name != "ada" {
		t.Errorf("rooms %+v", ep.Rooms)
	}
	if len(ep.Latency) != 1 || ep.Latency[0].Handler != "message" || ep.Latency[0].Calls != 1 || ep.Latency[0].P99MS <= 0 {
		t.Errorf("latency %+v", ep.Latency)
	}
	if len(snap.Errors) != 1 || !strings.Contains(snap.Errors[0].Attrs["err"], "lobby.lua:7") {
		t.Errorf("errors %+v", snap.Errors)
	}
	if len(snap.Logs) != 2 || snap.Logs[1].Message != "an ordinary line" {
		t.Errorf("logs %+v", snap.Logs)
	}
}

func TestStateBoundsTheLogLines(t *testing.T) {
	f := start(t)
	for i := range 3 * admin.MaxLogLines {
		f.log.Info("line", "i", i)
	}
	snap := f.state(t)
	if len(snap.Logs) > admin.MaxLogLines || len(snap.Logs) > f.ring.Size() {
		t.Errorf("%d log lines in a snapshot (ring of %d, bound %d)", len(snap.Logs), f.ring.Size(), admin.MaxLogLines)
	}
}

func TestPageIsServed(t *testing.T) {
	f := start(t)
	for path, want := range map[string]string{
		"/admin/":          "<h1>Moongate admin</h1>",
		"/admin/admin.js":  "/admin/live",
		"/admin/admin.css": "prefers-color-scheme: dark",
	} {
		resp, err := http.Get("http://" + f.addr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Errorf("%s: %d, %q missing", path, resp.StatusCode, want)
		}
	}
}

// readSnapshot reads the next snapshot /admin/live pushes.
func readSnapshot(ctx context.Context, t *testing.T, c *websocket.Conn) admin.Snapshot {
	t.Helper()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("live: %v", err)
	}
	var snap admin.Snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

func TestLivePushesASnapshotThenChanges(t *testing.T) {
	f := start(t)
	ctx := ctx10(t)
	live, _, err := websocket.Dial(ctx, "ws://"+f.addr+"/admin/live", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.CloseNow()
	if snap := readSnapshot(ctx, t, live); len(snap.Endpoints) != 1 || snap.Endpoints[0].Version != "v1" {
		t.Fatalf("first snapshot %+v", snap.Endpoints)
	}
	f.svc.set("v2", "lobby.lua:3: unexpected symbol near 'end'")
	for {
		snap := readSnapshot(ctx, t, live)
		if ep := snap.Endpoints[0]; ep.Version == "v2" {
			if ep.LastError != "lobby.lua:3: unexpected symbol near 'end'" {
				t.Errorf("last error %q", ep.LastError)
			}
			break
		}
	}
	c, _, err := websocket.Dial(ctx, "ws://"+f.addr+"/lobby", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for readSnapshot(ctx, t, live).Endpoints[0].Connections != 1 {
	}
}

func TestLiveClosesWith1001WhenTheConsoleStops(t *testing.T) {
	f := start(t)
	ctx := ctx10(t)
	live, _, err := websocket.Dial(ctx, "ws://"+f.addr+"/admin/live", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.CloseNow()
	readSnapshot(ctx, t, live)
	f.stopAll()
	for {
		if _, _, err := live.Read(ctx); err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
				t.Errorf("closed with %v (%v), want 1001", code, err)
			}
			return
		}
	}
}

func TestLiveRefusesCrossSitePages(t *testing.T) {
	f := start(t)
	ctx := ctx10(t)
	_, resp, err := websocket.Dial(ctx, "ws://"+f.addr+"/admin/live",
		&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a cross-site page's upgrade: %v %v", resp, err)
	}
}

func TestLiveClosesAClientThatDoesNotRead(t *testing.T) {
	f := startWith(t, admin.Options{LiveWriteTimeout: 200 * time.Millisecond})
	ctx := ctx10(t)
	slow, _, err := websocket.Dial(ctx, "ws://"+f.addr+"/admin/live", nil) // and never read
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	eventually(t, "the slow client counted", func() bool { return f.console.LiveClients() == 1 })
	// Big snapshots that change all the time fill the socket's buffers.
	big := strings.Repeat("x", 4000)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f.log.Error("big", "a", big, "b", big, "c", big, "d", big, "e", big, "f", big, "g", big, "h", big, "i", i)
		}
	}()
	eventually(t, "the slow client closed", func() bool { return f.console.LiveClients() == 0 })
	fast, _, err := websocket.Dial(ctx, "ws://"+f.addr+"/admin/live", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.CloseNow()
	fast.SetReadLimit(64 << 20)
	if _, _, err := fast.Read(ctx); err != nil {
		t.Errorf("a new client after the slow one: %v", err)
	}
}
