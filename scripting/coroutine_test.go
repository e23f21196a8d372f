package scripting

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway/config"
)

const coroutineScript = `
local counter = coroutine.wrap(function()
  local i = 0
  while true do i = i + 1 coroutine.yield(i) end
end)
local echo = coroutine.create(function() while true do coroutine.yield("co") end end)
return {
  message = function(c, d)
    if d == "next" then
      local _, v = coroutine.resume(echo)
      c:send(counter() .. " " .. v)
    elseif d == "spin" then
      while true do end
    elseif d == "spin-inside" then
      coroutine.wrap(function() while true do end end)()
    elseif d == "yield-in-pcall" then
      local t = coroutine.create(function() return pcall(coroutine.yield, 1) end)
      local ok, inner, err = coroutine.resume(t)
      c:send(tostring(ok) .. " " .. tostring(inner) .. " " .. tostring(err))
    elseif d == "wrap-error" then
      local ok, err = pcall(coroutine.wrap(function() error("boom") end))
      c:send(tostring(ok) .. " " .. tostring(err))
    end
  end,
}
`

// TestCoroutinesRunUnderTheResumersBudget: a coroutine kept across
// handlers keeps working after another handler overran its budget; a
// runaway loop inside a coroutine is stopped by the budget; a yield inside
// pcall is a clear error, not a crash; wrap raises its coroutine's errors.
func TestCoroutinesRunUnderTheResumersBudget(t *testing.T) {
	log := &syncBuffer{}
	addr := serveEndpoint(t, coroutineScript, slog.New(slog.NewTextHandler(log, nil)), func(ep *config.Endpoint) {
		ep.States, ep.Budget = 1, 50*time.Millisecond
	})
	c := dialScript(t, addr, nil)

	expect := func(send, want string) {
		t.Helper()
		if got := roundTrip(t, c, send); !strings.HasPrefix(got, want) {
			t.Errorf("%s: got %q, want %q", send, got, want)
		}
	}
	expect("next", "1 co")
	for _, runaway := range []string{"spin", "spin-inside"} {
		sendOnly(t, c, runaway)
		expect("next", "") // answered at all: the runaway was stopped
	}
	if n := strings.Count(log.String(), "ran past its budget"); n != 2 {
		t.Errorf("%d budget stops logged, want 2:\n%s", n, log)
	}
	expect("next", "4 co")
	expect("yield-in-pcall", "true false ")
	if got := roundTrip(t, c, "yield-in-pcall"); !strings.Contains(got, "attempt to yield across pcall") {
		t.Errorf("yield inside pcall: %q", got)
	}
	expect("wrap-error", "false ")
	if got := roundTrip(t, c, "wrap-error"); !strings.Contains(got, "boom") {
		t.Errorf("wrap's error: %q", got)
	}
	expect("next", "5 co")
}

// sendOnly writes a text message.
func sendOnly(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// roundTrip writes a text message and returns the next message read.
func roundTrip(t *testing.T, c *websocket.Conn, msg string) string {
	t.Helper()
	sendOnly(t, c, msg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("%s: %v", msg, err)
	}
	return string(data)
}
