package scripting

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/moongate/moongate/gateway/config"
)

// namedScript arms named timers on request; its timer handler tells the
// client whose id the data holds, stamped VERSION.
const namedScript = `return {
  message = function(c, m)
    local verb, arg = m:match("^(%S+) ?(.*)$")
    if verb == "at" then
      timer.at(clock.now() + 0.02, "remind:" .. c.id, { id = c.id, text = arg })
      c:send("armed " .. tostring(type(timer.pending("remind:" .. c.id)) == "number"))
    elseif verb == "every" then
      timer.every(0.01, "tick:" .. c.id, { id = c.id })
      c:send("ticking")
    elseif verb == "cancel" then
      c:send("cancelled " .. tostring(timer.cancel("tick:" .. c.id)) .. " " .. tostring(timer.pending("tick:" .. c.id)))
    elseif verb == "pending" then
      c:send(tostring(timer.pending(arg)))
    elseif verb == "bad" then
      local ok, err = pcall(timer.at, 0, string.rep("n", 300))
      c:send(err)
    end
  end,
  timer = function(name, data)
    local c = clients.get(data.id)
    if c then c:send("VERSION " .. name .. " " .. (data.text or "")) end
  end,
}`

func TestNamedTimerAt(t *testing.T) {
	addr := serveEndpoint(t, strings.ReplaceAll(namedScript, "VERSION", "v1"), slog.New(slog.DiscardHandler), func(ep *config.Endpoint) { ep.States = 2 })
	c := dialScript(t, addr, nil)
	if got := roundTrip(t, c, "at first"); got != "armed true" {
		t.Fatalf("got %q", got)
	}
	if got := roundTrip(t, c, "at second"); got != "armed true" { // replaces the first
		t.Fatalf("got %q", got)
	}
	if got := readText(t, c); !strings.HasPrefix(got, "v1 remind:") || !strings.HasSuffix(got, " second") {
		t.Fatalf("got %q, want the second reminder only", got)
	}
	if got := roundTrip(t, c, "pending remind:x"); got != "nil" {
		t.Fatalf("pending after firing: %q", got)
	}
	if got := roundTrip(t, c, "bad"); !strings.Contains(got, "a timer name is 1 to 256 bytes") {
		t.Fatalf("got %q", got)
	}
}

func TestNamedTimersSurviveReload(t *testing.T) {
	addr, svc := serveService(t, strings.ReplaceAll(namedScript, "VERSION", "v1"), slog.New(slog.DiscardHandler), func(ep *config.Endpoint) { ep.States = 2 })
	c := dialScript(t, addr, nil)
	if got := roundTrip(t, c, "every"); got != "ticking" {
		t.Fatalf("got %q", got)
	}
	if got := readText(t, c); !strings.HasPrefix(got, "v1 tick:") {
		t.Fatalf("got %q", got)
	}
	if err := os.WriteFile(svc.Endpoint().Script, []byte(strings.ReplaceAll(namedScript, "VERSION", "v2")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Reload(); err != nil {
		t.Fatal(err)
	}
	for {
		got := readText(t, c)
		if strings.HasPrefix(got, "v2 tick:") {
			break // the same timer, now handled by the new version
		}
		if !strings.HasPrefix(got, "v1 tick:") {
			t.Fatalf("got %q", got)
		}
	}
	sendOnly(t, c, "cancel")
	for {
		got := readText(t, c)
		if got == "cancelled true nil" {
			break
		}
		if !strings.HasPrefix(got, "v2 tick:") {
			t.Fatalf("got %q", got)
		}
	}
}

func TestNamedTimerArmedInStart(t *testing.T) {
	addr := serveEndpoint(t, `
return {
  start = function() timer.at(0, "boot", { text = "up" }) end,
  timer = function(name, data) store.set("boot", name .. " " .. data.text) end,
  message = function(c) c:send(tostring(store.get("boot"))) end,
}`, slog.New(slog.DiscardHandler), func(ep *config.Endpoint) { ep.States = 2 })
	c := dialScript(t, addr, nil)
	waitFor(t, func() bool { return roundTrip(t, c, "?") == "boot up" })
}
