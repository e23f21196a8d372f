package scripting

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/gatewaytest"
	"github.com/moongate/moongate/gateway/metrics"
)

// versioned is an echo script that tags each reply with its version. Each
// message takes a little while, so inboxes hold events when a reload comes.
func versioned(tag string) string {
	return `
local svc = {}
function svc.message(c, data)
  if data == "prev" then c:send(tostring(store.get("prev"))) return end
  local t = clock.mono()
  while clock.mono() - t < 0.0002 do end
  c:send("` + tag + `:" .. data)
end
function svc.reload(previous) store.set("prev", previous) end
return svc
`
}

// startReloadable serves script (written to a file) at /ws and returns the
// service, its script path and the server.
func startReloadable(t *testing.T, script string, states int) (*Service, string, *gatewaytest.Server) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "svc.lua")
	writeScript(t, path, script)
	ep := config.DefaultEndpoint("/ws", path)
	ep.States, ep.Budget = states, 200*time.Millisecond
	m := metrics.New()
	svc, err := New(ep, slog.New(slog.DiscardHandler), m.Endpoint(ep.Path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc, path, gatewaytest.Start(t, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{"/ws": svc}, m)
}

func writeScript(t *testing.T, path, src string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReloadUnderTraffic reloads good and broken versions while clients
// send: nobody is disconnected, every message is answered exactly once and
// in order, each client sees versions only move forward, and a broken
// version never serves.
func TestReloadUnderTraffic(t *testing.T) {
	svc, path, srv := startReloadable(t, versioned("v0"), 2)
	const clients, perClient = 8, 300
	stop := make(chan struct{})
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- talk(srv.URL("/ws"), i, perClient)
		}()
	}
	broken := []string{
		"local svc = {\nreturn svc\n",                            // syntax error
		"return { start = function() error('start fails') end }", // start raises
		"return { start = function() while true do end end }",    // start never ends
		"return 42", // no handlers
		"local x = nil\nreturn { message = function(c) c:send(x.y) end, start = 1 }", // a handler that is not a function
	}
	go func() {
		defer close(stop)
		for v := 1; v <= 10; v++ {
			time.Sleep(5 * time.Millisecond)
			if v%2 == 0 {
				writeScript(t, path, broken[(v/2-1)%len(broken)])
				if _, err := svc.Reload(); err == nil {
					t.Errorf("broken version %d was accepted", v)
				}
			}
			writeScript(t, path, versioned(fmt.Sprintf("v%d", v)))
			if changed, err := svc.Reload(); err != nil || !changed {
				t.Errorf("reload to v%d: changed=%v err=%v", v, changed, err)
			}
		}
	}()
	wg.Wait()
	<-stop
	for range clients {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	st := svc.Status()
	if st.Reloads != 10 || st.LastError == "" {
		t.Errorf("status %+v: want 10 reloads and the last error kept", st)
	}
}

// talk sends n numbered messages with up to 4 in flight and checks the
// replies: all there, in order, versions never going back.
func talk(url string, id, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := c.Write(ctx, websocket.MessageText, []byte(strconv.Itoa(i))); err != nil {
				sent <- err
				return
			}
			if i%4 == 3 {
				time.Sleep(time.Millisecond)
			}
		}
		sent <- nil
	}()
	version := 0
	for i := range n {
		_, data, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("client %d after %d replies: %w", id, i, err)
		}
		tag, body, _ := strings.Cut(string(data), ":")
		v, _ := strconv.Atoi(strings.TrimPrefix(tag, "v"))
		if body != strconv.Itoa(i) {
			return fmt.Errorf("client %d: reply %d is %q (lost, duplicated or reordered)", id, i, data)
		}
		if v < version {
			return fmt.Errorf("client %d: version went back from v%d to v%d", id, version, v)
		}
		version = v
	}
	return <-sent
}

func TestReloadHookGetsThePreviousVersion(t *testing.T) {
	svc, path, srv := startReloadable(t, versioned("a"), 1)
	before := svc.Status().Version
	writeScript(t, path, versioned("b"))
	if _, err := svc.Reload(); err != nil {
		t.Fatal(err)
	}
	c := dialScript(t, srv.Addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, []byte("prev"))
	if _, got, _ := c.Read(ctx); string(got) != before {
		t.Errorf("reload(previous) got %q, want %q", got, before)
	}
	if changed, err := svc.Reload(); changed || err != nil {
		t.Errorf("reloading the same content: changed=%v err=%v", changed, err)
	}
}
