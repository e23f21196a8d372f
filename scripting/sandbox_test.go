package scripting

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
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

// hostile is a script whose commands try to escape the sandbox or exhaust
// the process.
const hostile = `
local attacks = {}
function attacks.execute() return os.execute("touch /tmp/pwned") end
function attacks.open() return io.open("/etc/passwd") end
function attacks.bytecode() return load("\27LuaQ\0")() end
function attacks.require() return require("/etc/passwd") end
function attacks.dofile() return dofile("/etc/passwd") end
function attacks.rep() return string.rep("x", 1e10) end
function attacks.grow() local t = {} local i = 0 while true do i = i + 1 t[i] = string.rep("x", 65536) .. i end end
function attacks.recurse() local function f(n) return f(n + 1) + 1 end return f(1) end
function attacks.loop() while true do end end
function attacks.getmeta() return getmetatable("").__index.rep("x", 1e10) end
return {
  message = function(c, data)
    if data == "ping" then c:send("pong") return end
    attacks[data]()
    c:send("escaped: " .. data)
  end,
}
`

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSandboxStopsEveryAttack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hostile.lua")
	writeScript(t, path, hostile)
	ep := config.DefaultEndpoint("/ws", path)
	// The budget is generous: under -race the interpreter is slow enough that
	// 64 MiB of growth can take more than half a second, and the memory guard
	// must trip before the time budget does.
	ep.States, ep.Budget, ep.HandlerMemory = 1, 3*time.Second, 64<<20
	logs := &syncBuffer{}
	m := metrics.New()
	svc, err := New(ep, slog.New(slog.NewTextHandler(logs, nil)), m.Endpoint(ep.Path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	srv := gatewaytest.Start(t, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{"/ws": svc}, m)
	attacker := dialScript(t, srv.Addr, nil)
	bystander := dialScript(t, srv.Addr, nil) // the same (single) state

	for attack, want := range map[string]string{
		"execute":  "attempt to index a non-table object(nil) with key 'execute'",
		"open":     "attempt to index a non-table object(nil) with key 'open'",
		"bytecode": "attempt to call a non-function object",
		"require":  "attempt to call a non-function object",
		"dofile":   "attempt to call a non-function object",
		"rep":      "string.rep: result would exceed",
		"getmeta":  "string.rep: result would exceed",
		"recurse":  "stack overflow",
		"loop":     "handler stopped: it ran past its budget of 3s",
		"grow":     "handler stopped: it grew the heap by more than 64 MiB",
	} {
		before := strings.Count(logs.String(), "script error")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		attacker.Write(ctx, websocket.MessageText, []byte(attack))
		for strings.Count(logs.String(), "script error") == before && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		lines := strings.Split(logs.String(), "\n")
		last := lines[len(lines)-2]
		if !strings.Contains(last, want) || !strings.Contains(last, "hostile.lua:") {
			t.Errorf("%s: log line %q, want %q at a script line", attack, last, want)
		}
		for _, c := range []*websocket.Conn{attacker, bystander} {
			if got := ping(t, c); got != "pong" {
				t.Fatalf("after %s: %q", attack, got)
			}
		}
	}
	if strings.Contains(logs.String(), "escaped") {
		t.Error("an attack got through")
	}
}

func ping(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, []byte("ping"))
	_, got, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(got)
}
