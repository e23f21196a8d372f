package test

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// floodScript sends a client "flood N" messages of 256 KiB as fast as it can.
const floodScript = `
local big = string.rep("x", 256 * 1024)
local svc = {}
function svc.message(c, data)
  local n = tonumber(data:match("^flood (%d+)$") or "")
  if not n then c:send("pong") return end
  local failed = 0
  for i = 1, n do
    if not c:send(big) then failed = failed + 1 end
  end
  log.info("flood done", { failed = failed })
end
return svc
`

func floodGateway(t *testing.T, onFull string) *gatewayProc {
	return startGateway(t, map[string]string{
		"flood.lua": floodScript,
		"config.yaml": "endpoints:\n  - path: /flood\n    script: flood.lua\n    send_queue: 8\n    on_full: " + onFull +
			"\n    budget: 10s\n",
	})
}

func TestSlowClientUnderClosePolicy(t *testing.T) {
	g := floodGateway(t, "close")
	slow := dial(t, g.url("/flood"))
	other := dial(t, g.url("/flood"))
	send(t, slow, "flood 100") // and do not read until the flood is over
	line := g.waitLog(`"flood done"`)
	if line["failed"].(float64) == 0 {
		t.Fatal("the queue never filled: no send failed")
	}
	received := 0
	for {
		_, _, err := slow.Read(t.Context())
		if err == nil {
			received++
			continue
		}
		if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
			t.Fatalf("slow client ended with %v, want close 1008", err)
		}
		break
	}
	if received >= 100 {
		t.Errorf("the slow client received all %d messages", received)
	}
	if got := ask(t, other, "ping"); got != "pong" {
		t.Errorf("another client after the slow one was closed: %q", got)
	}
	if v := metricValue(t, g, `moongate_slow_client_closes_total{endpoint="/flood"}`); v != 1 {
		t.Errorf("slow_client_closes_total = %v, want 1", v)
	}
}

func TestSlowClientUnderDropPolicy(t *testing.T) {
	g := floodGateway(t, "drop")
	slow := dial(t, g.url("/flood"))
	send(t, slow, "flood 100")
	line := g.waitLog(`"flood done"`)
	failed := line["failed"].(float64)
	if failed == 0 {
		t.Fatal("the queue never filled: no send failed")
	}
	for range 100 - int(failed) {
		recv(t, slow)
	}
	if got := ask(t, slow, "ping"); got != "pong" {
		t.Errorf("after drops the client should still be served, got %q", got)
	}
	if v := metricValue(t, g, `moongate_send_queue_drops_total{endpoint="/flood"}`); v != failed {
		t.Errorf("send_queue_drops_total = %v, want %v", v, failed)
	}
}

func TestGracefulShutdownSays1001AndRunsCloseHandlers(t *testing.T) {
	g := apiGateway(t)
	a := dial(t, g.url("/api?name=a"))
	b := dial(t, g.url("/api?name=b"))
	ask(t, a, "count")
	ask(t, b, "count")
	code := make(chan int, 1)
	go func() { code <- g.stop() }()
	for _, c := range []*websocket.Conn{a, b} {
		if got, reason := expectClose(t, c); got != websocket.StatusGoingAway {
			t.Errorf("close %d %q, want 1001", got, reason)
		}
	}
	if exit := <-code; exit != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\n%s", exit, g.logs)
	}
	if _, ok := g.logs.find(`"fixture close"`, `"code":1001`); !ok {
		t.Errorf("the close handler did not run for the clients:\n%s", g.logs)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	g := startGateway(t, echoFiles(t, ""))
	c := dial(t, g.url("/echo"))
	send(t, c, "hello")
	recv(t, c)
	resp, err := http.Get("http://" + g.addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	if v := metricValue(t, g, `moongate_connections{endpoint="/echo"}`); v != 1 {
		t.Errorf("connections = %v", v)
	}
	if v := metricValue(t, g, `moongate_messages_in_total{endpoint="/echo"}`); v != 1 {
		t.Errorf("messages_in_total = %v", v)
	}
	if v := metricValue(t, g, `moongate_handler_duration_seconds_count{endpoint="/echo",handler="message"}`); v != 1 {
		t.Errorf("handler_duration_seconds_count = %v", v)
	}
}

// metricValue reads one sample from the gateway's /metrics.
func metricValue(t *testing.T, g *gatewayProc, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`)
	m := re.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no sample %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func TestDefaultConfigServesEcho(t *testing.T) {
	check := exec.Command(moongateBin, "check")
	check.Dir = ".."
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("moongate check in the repository: %v\n%s", err, out)
	}
	dir := exampleCopy(t)
	g := startGatewayIn(t, dir, "run", "-listen", "127.0.0.1:0", "-log-format", "json")
	c := dial(t, g.url("/echo"))
	if got := ask(t, c, "hello moongate"); got != "hello moongate" {
		t.Errorf("echo: %q", got)
	}
	if info, err := os.Stat(filepath.Join(dir, "data", "moongate.db")); err != nil || !info.Mode().IsRegular() {
		t.Errorf("the example's SQLite database was not made on first run: %v", err)
	}
}

// TestReadmeFirstService follows the README on a running gateway: write
// scripts/shout.lua, add it under endpoints in config.example.yaml, save,
// and it serves next to the rest without a restart.
func TestReadmeFirstService(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	script := codeBlockAfter(t, string(readme), "scripts/shout.lua")
	entry := codeBlockAfter(t, string(readme), "Add it to `config.example.yaml`")
	example, _ := os.ReadFile("../config.example.yaml")
	dir := exampleCopy(t)
	g := startGatewayIn(t, dir, "run", "-listen", "127.0.0.1:0", "-log-format", "json")
	e := dial(t, g.url("/echo"))

	writeFiles(t, dir, map[string]string{
		"scripts/shout.lua":   script,
		"config.example.yaml": strings.Replace(string(example), "\nendpoints:\n", "\nendpoints:\n"+entry, 1),
	})
	g.waitLog(`"config reloaded"`, `"/shout"`)
	c := dial(t, g.url("/shout"))
	if got := ask(t, c, "hello"); got != "HELLO" {
		t.Errorf("shout: %q", got)
	}
	if got := ask(t, e, "still here"); got != "still here" {
		t.Errorf("echo, connected before the change: %q", got)
	}
}

// codeBlockAfter returns the first fenced code block after the first line
// that mentions marker.
func codeBlockAfter(t *testing.T, doc, marker string) string {
	t.Helper()
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("README does not mention %s", marker)
	}
	rest := doc[i:]
	start := strings.Index(rest, "```")
	if start < 0 {
		t.Fatalf("no code block after %s", marker)
	}
	rest = rest[start+3:]
	rest = rest[strings.Index(rest, "\n")+1:]
	return rest[:strings.Index(rest, "```")]
}
