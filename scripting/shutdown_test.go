package scripting

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/wsproto"
)

// TestShutdownKeepsTheBudgetWhileStatesDrain: a handler that would loop
// forever, still queued when the service shuts down, is stopped by its
// budget like any other, so the shutdown completes.
func TestShutdownKeepsTheBudgetWhileStatesDrain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loop.lua")
	writeScript(t, path, `return { message = function(c, d)
  if d == "loop" then while true do end end
  local began = clock.mono()
  while clock.mono() - began < 0.1 do end
end }`)
	ep := config.DefaultEndpoint("/ws", path)
	ep.States, ep.Budget = 1, 500*time.Millisecond
	svc, err := New(ep, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := client.New(&client.Request{Path: "/ws"}, client.Options{}, nil)
	if err := svc.Connect(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"slow", "loop"} {
		svc.Message(t.Context(), c, wsproto.Message{Op: ws.OpText, Data: []byte(m)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	begin := time.Now()
	if err := svc.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v after %v; the budget did not stop the queued loop", err, time.Since(begin))
	}
	t.Logf("shut down in %v", time.Since(begin))
}
