package scripting

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/config"
)

// TestArgumentNumbersCountTheLuaWay: a client method's errors number its
// arguments without self, as Lua does, so client:set and store.set name
// the same argument #1 for the key.
func TestArgumentNumbersCountTheLuaWay(t *testing.T) {
	script := `return { message = function(c, d)
  local calls = {
    set = function() c:set() end,
    store = function() store.set() end,
    setvalue = function() c:set("k", function() end) end,
    get = function() c:get({}) end,
    send = function() c:send() end,
    kind = function() c:send("x", "purple") end,
    close = function() c:close("soon") end,
  }
  local _, err = pcall(calls[d])
  c:send(tostring(err))
end }`
	addr := serveEndpoint(t, script, slog.New(slog.DiscardHandler), func(ep *config.Endpoint) {
		ep.States, ep.Budget = 1, time.Second
	})
	c := dialScript(t, addr, nil)
	for call, want := range map[string]string{
		"set": "bad argument #1", "store": "bad argument #1", "setvalue": "bad argument #2",
		"get": "bad argument #1", "send": "bad argument #1", "kind": "bad argument #2", "close": "bad argument #1",
	} {
		if got := roundTrip(t, c, call); !strings.Contains(got, want) {
			t.Errorf("%s: %q, want %q", call, got, want)
		}
	}
}
