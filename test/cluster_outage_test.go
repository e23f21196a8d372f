package test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway/cluster"
	"github.com/moongate/moongate/gateway/cluster/clustertest"
	"github.com/moongate/moongate/gateway/db/dbtest"
)

// roomsScript is a service speaking plain text: "join:<room>" (answered
// "joined:<room>") and "say:<room>:<text>" (a broadcast of <text>).
const roomsScript = `
local svc = {}
function svc.message(client, data)
  local cmd, room, text = data:match("^(%w+):([^:]+):?(.*)$")
  if cmd == "join" then
    rooms.join(room, client)
    client:send("joined:" .. room)
  elseif cmd == "say" then
    rooms.broadcast(room, text)
  end
end
return svc
`

// textClient reads every text message of its connection into a list.
type textClient struct {
	t    testing.TB
	conn *websocket.Conn
	mu   sync.Mutex
	got  []string
	more chan struct{}
}

func newTextClient(t testing.TB, url string) *textClient {
	t.Helper()
	c := &textClient{t: t, conn: dial(t, url), more: make(chan struct{}, 1)}
	c.conn.SetReadLimit(1 << 20)
	go func() {
		for {
			_, data, err := c.conn.Read(context.Background())
			if err != nil {
				return
			}
			c.mu.Lock()
			c.got = append(c.got, string(data))
			c.mu.Unlock()
			select {
			case c.more <- struct{}{}:
			default:
			}
		}
	}()
	return c
}

func (c *textClient) send(msg string) {
	c.t.Helper()
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// waitFor waits until the client has received n messages and returns them.
func (c *textClient) waitFor(n int, d time.Duration) []string {
	c.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		if len(c.got) >= n {
			out := append([]string(nil), c.got...)
			c.mu.Unlock()
			return out
		}
		have := len(c.got)
		c.mu.Unlock()
		select {
		case <-c.more:
		case <-deadline.C:
			c.t.Fatalf("received %d messages in %v, want %d", have, d, n)
		}
	}
}

// received returns what the client has received so far.
func (c *textClient) received() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.got...)
}

func (c *textClient) join(room string) {
	c.t.Helper()
	before := len(c.received())
	c.send("join:" + room)
	if got := c.waitFor(before+1, 30*time.Second); got[before] != "joined:"+room {
		c.t.Fatalf("got %q, want joined:%s", got[before], room)
	}
}

// get returns the body of an HTTP GET of path on g.
func (g *gatewayProc) get(path string) string {
	g.t.Helper()
	resp, err := http.Get("http://" + g.addr + path)
	if err != nil {
		g.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		g.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return string(body)
}

// metric returns the value of a metric line starting with name on g.
func (g *gatewayProc) metric(name string) string {
	g.t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(g.get("/metrics"))
	if m == nil {
		g.t.Fatalf("no metric %s", name)
	}
	return m[1]
}

// redisProxy starts a TCP proxy to the test Redis, which a test can take
// away and bring back, and returns it with the URL the nodes use.
func redisProxy(t *testing.T) (*dbtest.Proxy, string) {
	clustertest.Redis(t) // skip (or fail under CI) without Redis
	u, err := url.Parse(clustertest.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := dbtest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	return proxy, u.String()
}

// TestClusterRedisOutage: Redis out of reach. Each node goes on serving
// its own clients (a room's members on the sender's node get its messages
// at once), /healthz says degraded, the outage is logged once; once Redis
// is back, the other nodes get what was said meanwhile, once each and in
// order, and nobody gets anything twice. Past the outbox's bound,
// publications are dropped for the other nodes and counted.
func TestClusterRedisOutage(t *testing.T) {
	proxy, redisURL := redisProxy(t)
	files := map[string]string{"rooms.lua": roomsScript,
		"config.yaml": "endpoints:\n  - path: /rooms\n    script: rooms.lua\n    send_queue: 20000\n    send_queue_bytes: 8MiB\n"}
	nodes := startClusterAt(t, redisURL, 2, files)
	a1, a2 := newTextClient(t, nodes[0].url("/rooms")), newTextClient(t, nodes[0].url("/rooms"))
	b := newTextClient(t, nodes[1].url("/rooms"))
	for _, c := range []*textClient{a1, a2, b} {
		c.join("r")
	}

	proxy.SetDown(true)
	for _, g := range nodes {
		eventually(t, "/healthz to say degraded", func() bool { return strings.HasPrefix(g.get("/healthz"), "degraded: ") })
	}
	const said = cluster.MaxOutbox + 50
	for i := range said {
		a1.send(fmt.Sprintf("say:r:m%d", i))
	}
	local := a2.waitFor(1+said, 60*time.Second)[1:] // served at once on the node
	for i, m := range local {
		if m != fmt.Sprintf("m%d", i) {
			t.Fatalf("a2 got %q as message %d during the outage", m, i)
		}
	}
	if got := b.received(); len(got) != 1 {
		t.Fatalf("b, on the other node, got %d messages during the outage", len(got)-1)
	}
	if n := nodes[0].logs.count("Redis unreachable"); n != 1 {
		t.Errorf("the outage was logged %d times, want once", n)
	}

	proxy.SetDown(false)
	for _, g := range nodes {
		eventually(t, "/healthz to say ok", func() bool { return g.get("/healthz") == "ok\n" })
	}
	remote := b.waitFor(1+cluster.MaxOutbox, 60*time.Second)[1:]
	for i, m := range remote {
		if m != fmt.Sprintf("m%d", i) {
			t.Fatalf("b got %q as message %d after the outage", m, i)
		}
	}
	if got := nodes[0].metric("moongate_cluster_dropped_publications_total"); got != "50" {
		t.Errorf("dropped publications = %s, want 50 (past the outbox's %d)", got, cluster.MaxOutbox)
	}
	eventually(t, "the outbox to empty", func() bool { return nodes[0].metric("moongate_cluster_outbox_publications") == "0" })

	b.send("say:r:after")
	a2.waitFor(1+said+1, 30*time.Second)
	b.waitFor(1+cluster.MaxOutbox+1, 30*time.Second)
	a1.waitFor(1+said+1, 30*time.Second)
	for name, c := range map[string]*textClient{"a1": a1, "a2": a2, "b": b} {
		got := c.received()
		if last := got[len(got)-1]; last != "after" {
			t.Errorf("%s's last message is %q, want after", name, last)
		}
		seen := map[string]bool{}
		for _, m := range got {
			if seen[m] {
				t.Fatalf("%s got %q twice", name, m)
			}
			seen[m] = true
		}
	}
}
