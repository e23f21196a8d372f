package test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Attacks on the Lua sandbox through the real binary: one endpoint's script
// reaching into another's, and built-ins that run long or allocate much.

// tenantA tries to plant its own functions on json.null, to run them in
// whichever state calls tostring(json.null) next.
const tenantA = `
hits = 0
local function evil()
  hits = hits + 1 -- tenant-a's globals, touched from another state's goroutine
  local env = getfenv(0)
  if env.rooms then
    env.rooms.publish("lobby", '{"type":"message","room":"lobby","from":"admin","text":"forged"}')
  end
  return "pwned"
end
return {
  message = function(c, data)
    if data == "inject" then
      local ok, err = pcall(setmetatable, json.null, {__tostring = evil, __index = evil, __concat = evil})
      c:send(ok and "injected" or ("refused: " .. tostring(err)))
    elseif data == "spin" then
      local t = {}
      for i = 1, 20000 do hits = hits + 1 t["k" .. i % 100] = i end
      c:send("spun")
    end
  end,
}
`

// tenantB uses json.null the way any script does.
const tenantB = `
return {
  message = function(c, data)
    local pwned = 0
    for i = 1, 500 do if tostring(json.null) == "pwned" then pwned = pwned + 1 end end
    c:send(tostring(getmetatable(json.null)) .. " " .. pwned)
  end,
}
`

func TestOneTenantCannotRunCodeInAnother(t *testing.T) {
	files := chatFiles(t, 2, `  - path: /tenant-a
    script: a.lua
    states: 2
    budget: 10s
  - path: /tenant-b
    script: b.lua
    states: 2
    budget: 10s
`)
	files["a.lua"], files["b.lua"] = tenantA, tenantB
	g := startGateway(t, files)

	a := dial(t, g.url("/tenant-a"))
	send(t, a, "inject")
	if _, got := recv(t, a); !strings.HasPrefix(got, "refused: ") || !strings.Contains(got, "table expected") {
		t.Errorf("setmetatable on json.null: %q", got)
	}

	// Two states of tenant-b and one of tenant-a at once: had the
	// injection worked, tenant-a's globals would be used from three
	// goroutines (a concurrent map write kills the process).
	var wg sync.WaitGroup
	results := make(chan string, 20)
	for _, path := range []string{"/tenant-b", "/tenant-b", "/tenant-a"} {
		c := dial(t, g.url(path))
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := contextWithTimeout(20 * time.Second)
			defer cancel()
			for range 5 {
				msg := "probe"
				if path == "/tenant-a" {
					msg = "spin"
				}
				if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
					results <- err.Error()
					return
				}
				_, data, err := c.Read(ctx)
				if err != nil {
					results <- err.Error()
					return
				}
				results <- path + " " + string(data)
			}
		}()
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r != "/tenant-b nil 0" && r != "/tenant-a spun" {
			t.Errorf("tenant-b saw tenant-a's code, or the process died: %q", r)
		}
	}

	// The shipped chat: a null room is a bad room, and nothing forged
	// reaches the lobby.
	alice := login(t, g.url("/chat"), "alice")
	alice.join("lobby")
	bob := login(t, g.url("/chat"), "bob")
	bob.sendRaw(`{"type":"say","room":null}`)
	if e := bob.expectError("invalid_room", "say"); strings.Contains(e.str("message"), "pwned") {
		t.Errorf("the error message ran tenant-a's code: %v", e)
	}
	bob.join("lobby")
	bob.send(map[string]any{"type": "say", "room": "lobby", "text": "after"})
	alice.expect("presence")
	if m := alice.expect("message"); m.str("from") != "bob" || m.str("text") != "after" {
		t.Errorf("alice got %v, want bob's message", m)
	}
	select {
	case <-g.done:
		t.Fatalf("moongate died: %v\n%s", g.err, g.logs)
	default:
	}
}

// slowPattern backtracks quadratically (cubically with the captures) in
// any Lua 5.1 matcher.
const slowPattern = `
return {
  message = function(c, data)
    if data == "ping" then c:send("pong") return end
    c:send(tostring(data:match("^%s*(.-)%s*$")))
  end,
}
`

func TestSlowPatternIsStoppedWithinItsBudget(t *testing.T) {
	const budget = time.Second
	g := startGateway(t, map[string]string{
		"p.lua": slowPattern,
		"config.yaml": "endpoints:\n  - path: /p\n    script: p.lua\n    states: 2\n    budget: 1s\n" +
			"    max_message_bytes: 128KiB\n",
	})
	attack := "a" + strings.Repeat(" ", 100_000) + "a"
	attackers := []*websocket.Conn{dial(t, g.url("/p")), dial(t, g.url("/p"))} // one per state
	// The budget is CPU time: what the gateway spends before both attackers
	// are served again is compared with it, not the wall-clock time, which
	// a loaded machine stretches.
	begin, cpu := time.Now(), processCPU(t, g)
	for _, c := range attackers {
		send(t, c, attack)
		send(t, c, "ping")
	}
	for i, c := range attackers {
		if _, got := recv(t, c); got != "pong" {
			t.Fatalf("attacker %d: %q", i, got)
		}
		t.Logf("attacker %d served again after %v", i, time.Since(begin).Round(time.Millisecond))
	}
	if used := processCPU(t, g) - cpu; used > time.Duration(len(attackers))*(budget+time.Second) {
		t.Errorf("the gateway used %v of CPU before serving the attackers again: more than %v each over a budget of %v",
			used, time.Second, budget)
	}
	line := g.waitLog(`"script error"`, "handler stopped: it ran past its budget of 1s")
	if err, _ := line["err"].(string); !strings.HasPrefix(err, "p.lua:") {
		t.Errorf("log line: %v", line)
	}
	newcomer := dial(t, g.url("/p"))
	send(t, newcomer, "ping")
	if _, got := recv(t, newcomer); got != "pong" {
		t.Errorf("newcomer: %q", got)
	}
}

// hungry runs one memory attack per message, under pcall, and answers
// with the error it met.
const hungry = `
local function shared(levels)
  local t = {}
  for i = 1, levels do t = {a = t, b = t} end
  return t
end
local attacks = {
  gsub = function() return ("x"):rep(2^20):gsub("x", ("y"):rep(4096)) end,
  format_width = function() return string.format(("%999999s"):rep(2000), ("x"):rep(2000)) end,
  format_size = function() local s = ("x"):rep(2^23) return string.format(("%s"):rep(2000), s, s, s, s) end,
  concat = function() local t, s = {}, ("x"):rep(2^24 - 1) for i = 1, 100 do t[i] = s end return table.concat(t) end,
  unpack = function() return unpack({}, 1, 1e8) end,
  byte = function() return string.byte(("x"):rep(2^20), 1, -1) end,
  json = function() return json.encode(shared(26)) end,
  store = function() return store.set("k", shared(26)) end,
  attr = function(c) return c:set("k", shared(26)) end,
  log = function() log.info("big", {a = shared(26), b = shared(26)}) return "logged" end,
}
return {
  message = function(c, data)
    local ok, err = pcall(attacks[data], c)
    c:send(data .. ": " .. tostring(err))
  end,
}
`

func TestMemoryAttacksEndWithAnErrorAndStayBounded(t *testing.T) {
	const budget = 2 * time.Second
	g := startCappedFiles(t, map[string]string{
		"h.lua":       hungry,
		"config.yaml": "endpoints:\n  - path: /h\n    script: h.lua\n    states: 1\n    budget: 2s\n",
	})
	c := dial(t, g.url("/h"))
	for _, tt := range []struct{ attack, want string }{
		{"gsub", "string.gsub: result would exceed 16777216 bytes"},
		{"format_width", "invalid format (width or precision too long)"},
		{"format_size", "string.format: result would exceed 16777216 bytes"},
		{"concat", "table.concat: result would exceed 16777216 bytes"},
		{"unpack", "too many results to unpack"},
		{"byte", "string slice too long"},
		{"json", "json.encode: "},
		{"store", "the copy would exceed 16777216 bytes"},
		{"attr", "the copy would exceed 16777216 bytes"},
		{"log", "logged"},
	} {
		begin, cpu := time.Now(), processCPU(t, g)
		send(t, c, tt.attack)
		_, got := recv(t, c)
		took, used := time.Since(begin), processCPU(t, g)-cpu
		if !strings.HasPrefix(got, tt.attack+": ") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: got %.300q, want %q", tt.attack, got, tt.want)
		}
		if used > budget+time.Second { // CPU time, as the budget counts it
			t.Errorf("%s: the gateway used %v of CPU before it ended, budget %v", tt.attack, used, budget)
		}
		t.Logf("%s: %v (%v of CPU), peak RSS %d MiB", tt.attack, took.Round(time.Millisecond), used, mustPeakRSS(t, g)>>20)
	}
	if peak := mustPeakRSS(t, g); peak > 512<<20 {
		t.Errorf("peak RSS %d MiB, want at most 512 MiB", peak>>20)
	}
	select {
	case <-g.done:
		t.Fatalf("moongate died: %v\n%s", g.err, g.logs)
	default:
	}
	if line := g.waitLog(`"msg":"big"`); line["a"] == nil {
		t.Errorf("the log line of the log attack: %v", line)
	}
}
