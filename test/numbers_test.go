package test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// numberedScript speaks plain text: "join:<room>", "say:<room>:<text>"
// (published, then answered "said:<room>"), and "hold:<room>:<url>": it
// reserves the room's next number, answers "reserved:<room>", waits for
// an HTTP GET of url, and publishes "held" under that number when the
// answer is 200 (otherwise the number is given up as the handler returns).
const numberedScript = `
local svc = {}
function svc.message(client, data)
  local cmd, room, arg = data:match("^(%w+):([^:]+):?(.*)$")
  if cmd == "join" then
    rooms.join(room, client)
    client:send("joined:" .. room)
  elseif cmd == "say" then
    rooms.publish(room, arg)
    client:send("said:" .. room)
  elseif cmd == "hold" then
    local n = rooms.reserve(room)
    client:send("reserved:" .. room)
    if http.get(arg).status == 200 then
      rooms.publish(room, "held", { number = n })
    end
  end
end
return svc
`

// gates is an HTTP server whose answers the test lets out: a GET of
// /<name>/<status> waits until the gate name is opened, then answers with
// that status.
type gates struct {
	*httptest.Server
	mu    sync.Mutex
	named map[string]chan struct{}
}

func newGates(t *testing.T) *gates {
	g := &gates{named: make(map[string]chan struct{})}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.Split(r.URL.Path, "/") // "", name, status
		status, err := strconv.Atoi(parts[len(parts)-1])
		if len(parts) != 3 || err != nil {
			http.NotFound(w, r)
			return
		}
		name := parts[1]
		select {
		case <-g.gate(name):
			w.WriteHeader(status)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		g.mu.Lock()
		for _, c := range g.named {
			select {
			case <-c:
			default:
				close(c)
			}
		}
		g.mu.Unlock()
		g.Close()
	})
	return g
}

func (g *gates) gate(name string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.named[name]
	if c == nil {
		c = make(chan struct{})
		g.named[name] = c
	}
	return c
}

// open lets the answers of gate name out.
func (g *gates) open(name string) { close(g.gate(name)) }

// numberedFiles are the files of a gateway serving numberedScript at /n,
// allowed to call the gates.
func numberedFiles(g *gates) map[string]string {
	return map[string]string{
		"n.lua":       numberedScript,
		"config.yaml": "endpoints:\n  - path: /n\n    script: n.lua\n    http:\n      allow: [\"" + g.URL + "/\"]\n      timeout: 60s\n",
	}
}

// expectInOrder waits until c has received want after what it had
// received before, and fails unless those are exactly want, in order.
func expectInOrder(t *testing.T, c *textClient, before int, want ...string) {
	t.Helper()
	got := c.waitFor(before+len(want), 60*time.Second)[before:]
	if !slices.Equal(got, want) {
		t.Fatalf("received %q, want %q", got, want)
	}
}

// holdAndSay has holder reserve a number in room r (waiting on gate name),
// then sayer publish text there: the sayer's message is published (it
// was answered) while the reservation holds the room.
func holdAndSay(t *testing.T, g *gates, holder, sayer *textClient, gate, status, text string) {
	t.Helper()
	before := len(holder.received())
	holder.send("hold:r:" + g.URL + "/" + gate + "/" + status)
	expectInOrder(t, holder, before, "reserved:r")
	before = len(sayer.received())
	sayer.send("say:r:" + text)
	expectInOrder(t, sayer, before, "said:r")
}

// TestRoomNumbersOrderMessages: a message published under a reserved
// number goes out before every message published after the reservation,
// however long the handler takes to publish it; a number its handler
// gives up (it returns without publishing) holds nothing back.
func TestRoomNumbersOrderMessages(t *testing.T) {
	g := newGates(t)
	gw := startGateway(t, numberedFiles(g))
	member, holder, sayer := newTextClient(t, gw.url("/n")), newTextClient(t, gw.url("/n")), newTextClient(t, gw.url("/n"))
	member.join("r")

	holdAndSay(t, g, holder, sayer, "first", "200", "x")
	g.open("first")
	expectInOrder(t, member, 1, "held", "x")

	holdAndSay(t, g, holder, sayer, "second", "500", "y")
	g.open("second")
	expectInOrder(t, member, 3, "y")
}

// TestClusterRoomNumbersOrderMessages: the same across nodes, and a node
// killed while it holds a number holds its room back for at most
// cluster.ReservationTTL (plus a heartbeat).
func TestClusterRoomNumbersOrderMessages(t *testing.T) {
	g := newGates(t)
	nodes := startCluster(t, 2, numberedFiles(g))
	holder := newTextClient(t, nodes[0].url("/n"))
	here, there := newTextClient(t, nodes[0].url("/n")), newTextClient(t, nodes[1].url("/n"))
	sayer := newTextClient(t, nodes[1].url("/n"))
	here.join("r")
	there.join("r")

	holdAndSay(t, g, holder, sayer, "first", "200", "x")
	g.open("first")
	for _, c := range []*textClient{here, there} {
		expectInOrder(t, c, 1, "held", "x")
	}

	holdAndSay(t, g, holder, sayer, "second", "500", "y")
	g.open("second")
	for _, c := range []*textClient{here, there} {
		expectInOrder(t, c, 3, "y")
	}

	holdAndSay(t, g, holder, sayer, "never", "200", "z")
	killed := time.Now()
	nodes[0].kill()
	expectInOrder(t, there, 4, "z")
	t.Logf("a number held by a killed node held its room for %v", time.Since(killed))
}
