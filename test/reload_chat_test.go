package test

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chatVersion is the shipped chat script with every message stamped v=k,
// so clients can tell which version handled it.
func chatVersion(t *testing.T, k int) string {
	src, err := os.ReadFile("../scripts/chat/chat.lua")
	if err != nil {
		t.Fatal(err)
	}
	const at = "text = msg.text, ts = clock.millis() }"
	if !strings.Contains(string(src), at) {
		t.Fatal("chat.lua changed: update chatVersion")
	}
	return strings.Replace(string(src), at, fmt.Sprintf("text = msg.text, ts = clock.millis(), v = %d }", k), 1)
}

// brokenChat are versions that must never serve.
var brokenChat = []string{
	"local chat = {\nreturn chat\n", // syntax error
	"return { start = function() error('no database') end, message = function() end }", // error in start
	"return { start = function() while true do end end }",                              // start never returns
	"while true do end\nreturn {}",                                                     // top level never returns
	"return { message = 'not a function' }",                                            // a handler that is not one
}

// TestChatSurvivesTwentyReloadsUnderLoad: 200 clients in 10 rooms send
// steadily while chat.lua is saved 20 times, 5 of them broken. Nobody is
// disconnected, every message reaches every member of its room exactly
// once and in order, each good version shows to clients already
// connected, and no broken version ever serves.
func TestChatSurvivesTwentyReloadsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("heavy: skipped with -short")
	}
	dir := t.TempDir()
	files := chatFiles(t, 4, "    budget: 100ms\n    options: {rate_limit: 100000}\n")
	files["chat.lua"] = chatVersion(t, 0)
	writeFiles(t, dir, files)
	g := startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	t.Cleanup(func() {
		if t.Failed() {
			for _, line := range strings.Split(g.logs.String(), "\n") {
				if !strings.HasPrefix(line, "{") || strings.Contains(line, `"level":"ERROR"`) || strings.Contains(line, `"level":"WARN"`) {
					t.Log(line)
				}
			}
			t.Logf("slow clients closed: %v", metricValue(t, g, `moongate_slow_client_closes_total{endpoint="/chat"}`))
		}
	})

	const rooms, perRoom = 10, 20
	clients := make([]*chatter, rooms*perRoom)
	for i := range clients {
		clients[i] = login(t, g.url("/chat"), fmt.Sprintf("u%03d", i))
		clients[i].join(fmt.Sprintf("r%d", i%rooms))
	}
	for i, c := range clients { // presence of the joins after one's own
		for range perRoom - 1 - i/rooms {
			c.expect("presence")
		}
	}

	// Every client says something every 100 ms (400 ms with the race
	// detector, which slows the gateway several times) until the 20 saves
	// are done.
	pace := 100 * time.Millisecond
	if raceEnabled {
		pace = 400 * time.Millisecond
	}
	stopSending := make(chan struct{})
	said := make([]int, len(clients))
	var sent atomic.Int64 // messages sent by all clients
	var senders sync.WaitGroup
	for i, c := range clients {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for n := 0; ; n++ {
				select {
				case <-stopSending:
					said[i] = n
					return
				default:
				}
				if !c.sendPushedBack(map[string]any{"type": "say", "room": fmt.Sprintf("r%d", i%rooms), "text": fmt.Sprintf("%s %d", c.nick, n)}) {
					said[i] = n
					return
				}
				sent.Add(1)
				time.Sleep(pace) // the pace of the load, not a wait
			}
		}()
	}
	// Messages flow under each version: wait for a good number to be sent
	// before the first save, after each one, and after the last.
	flowing := func(what string) {
		mark := sent.Load()
		eventuallyWithin(t, time.Minute, what, func() bool { return sent.Load() >= mark+int64(len(clients)) })
	}
	flowing("messages before the first save")
	good := 0
	for k := 1; k <= 20; k++ {
		src := chatVersion(t, k)
		if k%4 == 0 {
			src = brokenChat[k/4-1]
		}
		reloaded, failed := g.logs.count(`"script reloaded"`), g.logs.count(`"script reload failed`)
		writeFiles(t, dir, map[string]string{"chat.lua": src})
		// A reload waits for the old states to drain their inboxes: on a
		// loaded machine, with 200 clients sending, that takes seconds.
		eventuallyWithin(t, time.Minute, fmt.Sprintf("version %d to be taken or refused", k), func() bool {
			return g.logs.count(`"script reloaded"`) > reloaded || g.logs.count(`"script reload failed`) > failed
		})
		if k%4 != 0 {
			good = k
		}
		flowing(fmt.Sprintf("messages after version %d", k))
	}
	close(stopSending)
	senders.Wait()
	carried := make([]int, rooms) // messages each room carried
	for i := range clients {
		carried[i%rooms] += said[i]
	}
	if n := g.logs.count(`"script reload failed`); n != 5 {
		t.Errorf("%d reloads failed, want the 5 broken versions", n)
	}

	seen := map[float64]bool{}
	for i, c := range clients {
		next := map[string]int{}
		lastV := map[string]float64{}
		for range carried[i%rooms] {
			e := c.expect("message")
			var from string
			var n int
			fmt.Sscanf(e.str("text"), "%s %d", &from, &n)
			if e.str("room") != fmt.Sprintf("r%d", i%rooms) || n != next[from] {
				t.Fatalf("%s: got %v, want %s's message %d (lost, duplicated or reordered)", c.nick, e, from, next[from])
			}
			next[from]++
			v, _ := e["v"].(float64)
			if int(v)%4 == 0 && v != 0 {
				t.Fatalf("%s: broken version %v served %v", c.nick, v, e)
			}
			if v < lastV[from] {
				t.Fatalf("%s: version went back from %v to %v", c.nick, lastV[from], v)
			}
			lastV[from] = v
			seen[v] = true
		}
	}
	if len(seen) < 10 {
		t.Errorf("messages came from %d versions: the reloads did not happen under the load", len(seen))
	}
	// Everyone is still connected, and the last good version serves them.
	for i, c := range clients[:rooms] {
		c.send(map[string]any{"type": "say", "room": fmt.Sprintf("r%d", i), "text": "final 0"})
		if e := c.expect("message"); e["v"] != float64(good) {
			t.Errorf("%s: final message from version %v, want %d", c.nick, e["v"], good)
		}
	}
	if v := metricValue(t, g, `moongate_connections{endpoint="/chat"}`); v != float64(len(clients)) {
		t.Errorf("%v connections at the end, want %d: clients were dropped", v, len(clients))
	}
}
