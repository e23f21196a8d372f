package test

import (
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// apiGateway runs the API fixture at /api in two Lua states, so that
// consecutive clients land in different states.
func apiGateway(t *testing.T) *gatewayProc {
	t.Helper()
	src, err := os.ReadFile("testdata/api.lua")
	if err != nil {
		t.Fatal(err)
	}
	return startGateway(t, map[string]string{
		"api.lua": string(src),
		"config.yaml": `endpoints:
  - path: /api
    script: api.lua
    states: 2
    budget: 100ms
    options:
      greeting: hi
      limits: {n: 3}
`,
	})
}

// ask sends a command and returns the reply.
func ask(t *testing.T, c *websocket.Conn, cmd string) string {
	t.Helper()
	send(t, c, cmd)
	return recvText(t, c)
}

// askJSON sends a command and decodes the JSON reply.
func askJSON(t *testing.T, c *websocket.Conn, cmd string) map[string]any {
	t.Helper()
	var m map[string]any
	reply := ask(t, c, cmd)
	if err := json.Unmarshal([]byte(reply), &m); err != nil {
		t.Fatalf("%s: reply %q is not a JSON object: %v", cmd, reply, err)
	}
	return m
}

func TestLuaAPIClient(t *testing.T) {
	g := apiGateway(t)
	h := http.Header{"X-Test": {"header-value"}}
	c := dialWith(t, g.url("/api?name=alice"), h)

	who := askJSON(t, c, "whoami")
	if who["name"] != "alice" || who["query"] != "alice" || who["header"] != "header-value" ||
		who["from_connect"] != "header-value" || who["path"] != "/api" || who["host"] != g.addr {
		t.Errorf("whoami = %v", who)
	}
	if id, _ := who["id"].(string); id == "" {
		t.Errorf("empty client id in %v", who)
	}
	if remote, _ := who["remote"].(string); !strings.HasPrefix(remote, "127.0.0.1:") {
		t.Errorf("remote = %q", who["remote"])
	}

	send(t, c, "binary raw\x01bytes")
	if typ, data := recv(t, c); typ != websocket.MessageBinary || data != "raw\x01bytes" {
		t.Errorf("binary send: got %v %q", typ, data)
	}

	if got := ask(t, c, `set profile={"age":30,"tags":["a","b"]}`); got != "ok" {
		t.Fatalf("set: %q", got)
	}
	if got := ask(t, c, "get profile"); got != `{"value":{"age":30,"tags":["a","b"]}}` {
		t.Errorf("get after set: %s", got)
	}
	if got := ask(t, c, "attrs"); got != `{"name":"alice","profile":{"age":30,"tags":["a","b"]},"test_header":"header-value"}` {
		t.Errorf("attrs: %s", got)
	}
	ask(t, c, "set profile=null")
	if got := ask(t, c, "get profile"); got != `{}` {
		t.Errorf("get after removing: %s", got)
	}

	// Attributes live in Go: a client served by the other state reads them.
	other := dial(t, g.url("/api?name=bob"))
	if a, b := askJSON(t, c, "whoami")["state"], askJSON(t, other, "whoami")["state"]; a == b {
		t.Fatalf("both clients in state %v; the fixture needs them apart", a)
	}
	if got := ask(t, other, "getof "+who["id"].(string)+" name"); got != `{"value":"alice"}` {
		t.Errorf("attribute read from another state: %s", got)
	}

	send(t, c, "close now")
	if code, reason := expectClose(t, c); code != 4001 || reason != "bye now" {
		t.Errorf("client:close: got %d %q, want 4001 \"bye now\"", code, reason)
	}
}

func TestLuaAPIRoomsSpanStates(t *testing.T) {
	g := apiGateway(t)
	alice := dial(t, g.url("/api?name=alice"))
	bob := dial(t, g.url("/api?name=bob"))
	carol := dial(t, g.url("/api?name=carol"))

	if got := askJSON(t, alice, "join lobby"); got["joined"] != true || got["count"] != 1.0 || got["has"] != true ||
		!reflect.DeepEqual(got["mine"], []any{"lobby"}) {
		t.Errorf("first join: %v", got)
	}
	if got := askJSON(t, alice, "join lobby"); got["joined"] != false || got["count"] != 1.0 {
		t.Errorf("second join: %v", got)
	}
	askJSON(t, bob, "join lobby")
	askJSON(t, carol, "join other")
	if got := ask(t, carol, "members lobby"); got != `["alice","bob"]` {
		t.Errorf("members in join order: %s", got)
	}
	if got := ask(t, carol, "members nowhere"); got != `[]` {
		t.Errorf("members of an empty room: %s", got)
	}
	if got := ask(t, carol, "list"); got != `[{"members":2,"name":"lobby"},{"members":1,"name":"other"}]` {
		t.Errorf("list: %s", got)
	}

	// broadcast skips the excluded sender and reaches only members.
	if got := ask(t, alice, "say lobby hello"); got != "delivered 1" {
		t.Errorf("say: %q", got)
	}
	if got := recvText(t, bob); got != "alice: hello" {
		t.Errorf("bob got %q", got)
	}
	send(t, carol, "shout lobby loud")
	for _, c := range []*websocket.Conn{alice, bob} {
		if typ, data := recv(t, c); typ != websocket.MessageBinary || data != "loud" {
			t.Errorf("binary broadcast: %v %q", typ, data)
		}
	}
	if got := ask(t, carol, "count"); got != "3" {
		t.Errorf("clients.count: %s", got)
	}

	// clients.get reaches a client in another state; client values compare equal.
	bobID := askJSON(t, bob, "whoami")["id"].(string)
	if got := ask(t, alice, "tell "+bobID+" psst"); got != "sent" {
		t.Errorf("tell: %q", got)
	}
	if got := recvText(t, bob); got != "from alice: psst" {
		t.Errorf("bob got %q", got)
	}
	if got := ask(t, bob, "same "+bobID); got != "true true" {
		t.Errorf("client equality: %s", got)
	}
	if got := ask(t, alice, "tell nobody hi"); got != "no such client" {
		t.Errorf("tell unknown: %q", got)
	}

	if got := askJSON(t, bob, "leave lobby"); got["left"] != true || got["count"] != 1.0 || got["has"] != false {
		t.Errorf("leave: %v", got)
	}
	if got := askJSON(t, bob, "leave lobby"); got["left"] != false {
		t.Errorf("second leave: %v", got)
	}

	// A disconnect leaves every room; the close handler still sees them.
	askJSON(t, bob, "join lobby")
	bob.Close(websocket.StatusNormalClosure, "")
	if got := recvText(t, alice); got != "bob left with 1000" {
		t.Errorf("close handler broadcast: %q", got)
	}
	// Bob leaves the rooms right after his close handler has run, in his own
	// state: carol's state may answer in between, so wait for it.
	eventually(t, "bob gone from the lobby", func() bool { return ask(t, carol, "members lobby") == `["alice"]` })
}

func TestLuaAPITimers(t *testing.T) {
	g := apiGateway(t)
	c := dial(t, g.url("/api"))
	send(t, c, "after 0.05")
	if got := recvText(t, c); !strings.HasPrefix(got, "timer fired after 0.0") && !strings.HasPrefix(got, "timer fired after 0.1") {
		t.Errorf("timer.after(0.05): %q", got)
	}
	send(t, c, "every 0.02")
	for i := 1; i <= 3; i++ {
		if got := recvText(t, c); got != "tick "+string(rune('0'+i)) {
			t.Errorf("tick %d: %q", i, got)
		}
	}
	send(t, c, "cancel")
	if got := recvText(t, c); got != "cancel true false" {
		t.Errorf("timer.cancel: %q", got)
	}
	if got := recvText(t, c); got != "done" {
		t.Errorf("after cancel, got %q (a cancelled timer fired, or a tick after cancel)", got)
	}
}

func TestLuaAPIJSONLogClockOptionsService(t *testing.T) {
	g := apiGateway(t)
	c := dial(t, g.url("/api"))
	if got := ask(t, c, `json {"b":[1,2.5,"x",null,true],"a":{}}`); got != `{"a":{},"b":[1,2.5,"x",null,true]}` {
		t.Errorf("json round trip: %s", got)
	}
	if got := ask(t, c, `json {"a":`); !strings.HasPrefix(got, "error: ") {
		t.Errorf("json.decode of bad input: %s", got)
	}
	if got := ask(t, c, "log hello"); got != "logged" {
		t.Fatalf("log: %q", got)
	}
	line := g.waitLog(`"note from script"`, `"text":"hello"`)
	if line["level"] != "WARN" || line["n"] != 3.0 || !strings.HasPrefix(line["at"].(string), "api.lua:") {
		t.Errorf("log line: %v", line)
	}
	g.waitLog(`"printed\thello"`)

	clock := askJSON(t, c, "clock")
	now := float64(time.Now().UnixMilli())
	if ms := clock["millis"].(float64); ms < now-5000 || ms > now+5000 {
		t.Errorf("clock.millis = %v, now is %v", ms, now)
	}
	if s := clock["now"].(float64); s*1000 < now-5000 || s*1000 > now+5000 {
		t.Errorf("clock.now = %v", s)
	}
	if mono := clock["mono"].(float64); mono < 0 || mono > 600 {
		t.Errorf("clock.mono = %v", mono)
	}
	if got := ask(t, c, "options"); got != `{"greeting":"hi","limits":{"n":3}}` {
		t.Errorf("options: %s", got)
	}
	svc := askJSON(t, c, "service")
	if svc["path"] != "/api" || svc["states"] != 2.0 {
		t.Errorf("service: %v", svc)
	}
	if got := ask(t, c, "sandbox"); got != `[]` {
		t.Errorf("sandbox leaves these reachable: %s", got)
	}
	g.waitLog(`"fixture started"`)
}

func TestConnectHandlerRefuses(t *testing.T) {
	g := apiGateway(t)
	status, body := dialStatus(t, g.url("/api?deny=nope"), nil)
	if status != http.StatusUnauthorized || body != "denied: nope" {
		t.Errorf("refusal: %d %q", status, body)
	}
	status, _ = dialStatus(t, g.url("/api?crash=1"), nil)
	if status != http.StatusInternalServerError {
		t.Errorf("connect handler error: status %d, want 500", status)
	}
	g.waitLog(`"script error"`, `api.lua:`, `connect crashed on purpose`)
}

func TestScriptErrorKeepsTheConnection(t *testing.T) {
	g := apiGateway(t)
	c := dial(t, g.url("/api?name=erin"))
	id := askJSON(t, c, "whoami")["id"].(string)
	send(t, c, "error")
	line := g.waitLog(`"script error"`, `boom on purpose`)
	if err, _ := line["err"].(string); !strings.HasPrefix(err, "api.lua:") || line["client"] != id || line["handler"] != "message" {
		t.Errorf("error log line: %v", line)
	}
	if got := ask(t, c, "get name"); got != `{"value":"erin"}` {
		t.Errorf("after a script error: %q", got)
	}
}

func TestRunawayHandlerIsStoppedByItsBudget(t *testing.T) {
	g := apiGateway(t)
	c := dial(t, g.url("/api?name=frank"))
	neighbour := dial(t, g.url("/api?name=gina"))
	third := dial(t, g.url("/api?name=hal")) // the same state as c (two states, round robin)
	send(t, c, "loop")
	line := g.waitLog(`"script error"`, `budget`)
	if err, _ := line["err"].(string); !strings.HasPrefix(err, "api.lua:") || !strings.Contains(err, "100ms") {
		t.Errorf("budget log line: %v", line)
	}
	for _, conn := range []*websocket.Conn{c, neighbour, third} {
		if got := ask(t, conn, "count"); got != "3" {
			t.Errorf("after a runaway handler: %q", got)
		}
	}
}

// dialWith dials with extra request headers.
func dialWith(t *testing.T, url string, h http.Header) *websocket.Conn {
	t.Helper()
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}
