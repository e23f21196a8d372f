package test

// Memory attacks: clients that send a lot and never read, against the
// shipped settings. The gateway runs without the race detector (which
// multiplies memory) under an address-space cap, so that a failure cannot
// take the machine down, and its peak resident memory (VmHWM) must stay
// under memoryBar; afterwards it must still serve a well-behaved client.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// metricOr returns a sample of the gateway's /metrics, or false when it
// cannot be read (the gateway is gone or the sample is missing).
func metricOr(g *gatewayProc, name string) (float64, bool) {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + g.addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	return v, err == nil
}

// sitOutAttack waits until over reports that the attack is over, failing
// the test if the gateway dies or its peak resident memory passes
// memoryBar first. It returns the peak and how long the attack lasted.
func sitOutAttack(t *testing.T, g *gatewayProc, start time.Time, over func() bool) (int64, time.Duration) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	var peak int64
	for {
		select {
		case <-g.done:
			t.Fatalf("the gateway died under the attack (peak RSS last seen %d MiB): %v\n%s", peak>>20, g.err, tail(g.logs.String(), 20))
		default:
		}
		if p, ok := peakRSS(g); ok {
			peak = p
		}
		if peak >= memoryBar {
			t.Fatalf("peak RSS %d MiB under the attack, want < %d MiB", peak>>20, memoryBar>>20)
		}
		if over() {
			return peak, time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the attack was not over after 2 minutes (peak RSS %d MiB)", peak>>20)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// atLeast returns a condition: the gateway's metric name is at least n.
func atLeast(g *gatewayProc, name string, n int) func() bool {
	return func() bool { v, ok := metricOr(g, name); return ok && v >= float64(n) }
}

// atMost returns a condition: the gateway's metric name is at most n.
func atMost(g *gatewayProc, name string, n int) func() bool {
	return func() bool { v, ok := metricOr(g, name); return ok && v <= float64(n) }
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// attacker opens a raw WebSocket connection (attackers never read, and
// write the same pre-built frames again and again), offering
// permessage-deflate when deflate is set.
func attacker(t *testing.T, addr, path string, deflate bool) net.Conn {
	t.Helper()
	var extra []string
	if deflate {
		extra = append(extra, "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover")
	}
	c, err := rawDial(addr, path, extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.nc.Close() })
	if deflate && !strings.Contains(c.extensions, "permessage-deflate") {
		t.Fatalf("permessage-deflate not negotiated: %q", c.extensions)
	}
	c.nc.SetDeadline(time.Time{})
	return c.nc
}

// flood has each connection write frame again and again, never reading,
// until the gateway stops taking its bytes or stop is closed; then it
// closes the connection.
func flood(conns []net.Conn, frame []byte, stop <-chan struct{}) {
	for _, nc := range conns {
		go func() {
			defer nc.Close()
			for {
				select {
				case <-stop:
					return
				default:
				}
				nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
				if _, err := nc.Write(frame); err != nil {
					return
				}
			}
		}()
	}
}

// echoAttack floods /echo from n non-reading clients with frame; the
// endpoint is config.example.yaml's /echo, plus extra lines.
func echoAttack(t *testing.T, n int, frame []byte, deflate bool, extra string) {
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	echo := regexp.MustCompile(`(?s)  - path: /echo\n.*?\n\n`).Find(example)
	if echo == nil {
		t.Fatal("no /echo endpoint in config.example.yaml")
	}
	src, err := os.ReadFile("../scripts/echo.lua")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"scripts/echo.lua": string(src),
		"config.yaml":      "endpoints:\n" + string(bytes.TrimRight(echo, "\n")) + "\n" + extra,
	})
	g := startCapped(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = attacker(t, g.addr, "/echo", deflate)
	}
	start := time.Now()
	stop := make(chan struct{})
	flood(conns, frame, stop)
	// The attack is over once every attacker has been closed for not
	// reading (1008); then the attackers hang up.
	closes := `moongate_slow_client_closes_total{endpoint="/echo"}`
	peak, took := sitOutAttack(t, g, start, atLeast(g, closes, n))
	close(stop)
	eventually(t, "the attackers gone", atMost(g, `moongate_connections{endpoint="/echo"}`, 0))
	if p, ok := peakRSS(g); ok {
		peak = p
	}
	t.Logf("%d attackers: all closed with 1008 after %v; peak RSS %d MiB", n, took.Round(time.Millisecond), peak>>20)
	if peak >= memoryBar {
		t.Errorf("peak RSS %d MiB, want < %d MiB", peak>>20, memoryBar>>20)
	}
	c := dial(t, g.url("/echo"))
	big := strings.Repeat("m", 1_000_000)
	if got := ask(t, c, big); got != big {
		t.Errorf("after the attack, echo of 1 MB came back as %d bytes", len(got))
	}
}

func TestMemoryAttackEchoNonReadingClients(t *testing.T) {
	msg := bytes.Repeat([]byte("m"), 1_000_000)
	echoAttack(t, 8, frame(true, 0, ws.OpBinary, msg), false, "")
}

func TestMemoryAttackCompressedEcho(t *testing.T) {
	// 1 MB over four letters: deflate brings it to about a quarter.
	msg := make([]byte, 1_000_000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range msg {
		msg[i] = "acgt"[rng.IntN(4)]
	}
	z := compress(msg)
	t.Logf("1 MB message compressed to %d KB", len(z)>>10)
	echoAttack(t, 16, deflateFrame(true, ws.OpBinary, z), true, "    compression: true\n")
}

func TestMemoryAttackChatHistoryJoins(t *testing.T) {
	g := startCapped(t, exampleCopy(t), "run", "-listen", "127.0.0.1:0", "-log-format", "json")
	// Fill the lobby's history: 50 texts of 2,000 \u0001, 6 bytes each
	// once escaped in JSON; say is rate-limited per client, so three say them.
	text := strings.Repeat("\x01", 2000)
	for i := range 3 {
		f := login(t, g.url("/chat"), fmt.Sprintf("filler%d", i))
		f.join("lobby")
		n := 17 - i/2
		for range n {
			f.send(map[string]any{"type": "say", "room": "lobby", "text": text})
		}
		// The lobby is quiet before the next one joins: a message broadcast
		// by another state can reach a joiner before its joined reply.
		for got := 0; got < n; {
			if e := f.next(); e.str("type") == "message" && e.str("from") == f.nick {
				got++
			}
		}
	}
	probe := login(t, g.url("/chat"), "probe")
	eventually(t, "a history of 50 texts", func() bool {
		probe.send(map[string]any{"type": "join", "room": "lobby"})
		for {
			if e := probe.next(); e.str("type") == "joined" {
				return len(e["history"].([]any)) == 50
			}
		}
	})
	// 60 guests (20 took it past 3.9 GB, 60 killed it) say hello and join
	// the lobby 255 times, and never read.
	var requests []byte
	join, _ := json.Marshal(map[string]any{"type": "join", "room": "lobby"})
	for range 255 {
		requests = append(requests, frame(true, 0, ws.OpText, join)...)
	}
	guests := make([]net.Conn, 60)
	for i := range guests {
		guests[i] = attacker(t, g.addr, "/chat", false)
	}
	start := time.Now()
	for i, nc := range guests {
		hello, _ := json.Marshal(map[string]any{"type": "hello", "nick": fmt.Sprintf("guest%d", i)})
		go func() {
			nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
			nc.Write(append(frame(true, 0, ws.OpText, hello), requests...))
		}()
	}
	// The attack is over once the guests are gone: closed with 1008 for
	// not reading, or cut off when a write to them times out.
	peak, took := sitOutAttack(t, g, start, atMost(g, `moongate_connections{endpoint="/chat"}`, 4))
	if p, ok := peakRSS(g); ok {
		peak = p
	}
	closed, _ := metricOr(g, `moongate_slow_client_closes_total{endpoint="/chat"}`)
	t.Logf("%d guests: all gone after %v (%v closed with 1008); peak RSS %d MiB", len(guests), took.Round(time.Millisecond), closed, peak>>20)
	if peak >= memoryBar {
		t.Errorf("peak RSS %d MiB, want < %d MiB", peak>>20, memoryBar>>20)
	}
	after := login(t, g.url("/chat"), "after")
	if h := after.join("lobby")["history"].([]any); len(h) != 50 {
		t.Errorf("after the attack, joining gave %d history entries, want 50", len(h))
	}
}

// slowLua is a service that takes 10 ms over each message, answering
// "ping" with "pong".
const slowLua = `
local slow = {}
function slow.message(client, data)
  local stop = clock.mono() + 0.01
  while clock.mono() < stop do end
  if data == "ping" then client:send("pong") end
end
return slow
`

// TestMemoryAttackSlowServiceInbox: clients send 1 MB messages faster than
// the service handles them. The states' inboxes are bounded in bytes, so
// the gateway stops reading from the senders (TCP pushes back) instead of
// queueing 1024 messages of 1 MB per state.
func TestMemoryAttackSlowServiceInbox(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"slow.lua":    slowLua,
		"config.yaml": "endpoints:\n  - path: /slow\n    script: slow.lua\n    max_message_bytes: 1MiB\n",
	})
	g := startCapped(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	conns := make([]net.Conn, 8)
	for i := range conns {
		conns[i] = attacker(t, g.addr, "/slow", false)
	}
	start := time.Now()
	stop := make(chan struct{})
	flood(conns, frame(true, 0, ws.OpBinary, bytes.Repeat([]byte("m"), 1_000_000)), stop)
	// Over once the gateway has taken 600 MB from the senders: more than
	// the bar, had it queued it all.
	peak, took := sitOutAttack(t, g, start, atLeast(g, `moongate_bytes_in_total{endpoint="/slow"}`, 600_000_000))
	close(stop)
	eventually(t, "the senders gone", atMost(g, `moongate_connections{endpoint="/slow"}`, 0))
	if p, ok := peakRSS(g); ok {
		peak = p
	}
	t.Logf("8 senders: 600 MB taken in %v; peak RSS %d MiB", took.Round(time.Millisecond), peak>>20)
	if peak >= memoryBar {
		t.Errorf("peak RSS %d MiB, want < %d MiB", peak>>20, memoryBar>>20)
	}
	c := dial(t, g.url("/slow"))
	if got := ask(t, c, "ping"); got != "pong" {
		t.Errorf("after the attack: %q, want pong", got)
	}
}
