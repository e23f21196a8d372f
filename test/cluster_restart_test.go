package test

import (
	"strings"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/cluster/clustertest"
)

// restartScript is roomsScript with "count:<room>" (answered
// "count:<members on every node>") and "claim:<key>" (a store key bound
// to the client's life, answered "claim:true" or "claim:false"); a call
// Redis cannot answer is answered "error".
const restartScript = `
local svc = {}
local function handle(client, cmd, room, text)
  if cmd == "join" then
    rooms.join(room, client)
    client:send("joined:" .. room)
  elseif cmd == "say" then
    rooms.broadcast(room, text)
  elseif cmd == "count" then
    client:send("count:" .. rooms.count(room))
  elseif cmd == "claim" then
    client:send("claim:" .. tostring(store.add(room, client.id, { owner = client })))
  end
end
function svc.message(client, data)
  if not pcall(handle, client, data:match("^(%w+):([^:]+):?(.*)$")) then
    client:send("error")
  end
end
return svc
`

// ask sends a request to c and returns its answer.
func (c *textClient) ask(request string) string {
	c.t.Helper()
	before := len(c.received())
	c.send(request)
	return c.waitFor(before+1, 30*time.Second)[before]
}

// TestClusterRedisRestarted: Redis killed and started again empty. The
// nodes serve their own clients meanwhile; once it is back they publish
// what was said meanwhile (each message once, in order), register anew
// their clients, rooms and the keys their clients hold, and everything
// spans the nodes again. A restart too short for a heartbeat to fail is
// noticed as well.
func TestClusterRedisRestarted(t *testing.T) {
	redis := clustertest.StartPrivate(t)
	files := map[string]string{"rooms.lua": restartScript, "config.yaml": "endpoints:\n  - path: /rooms\n    script: rooms.lua\n"}
	nodes := startClusterAt(t, redis.URL(), 2, files)
	a, holder := newTextClient(t, nodes[0].url("/rooms")), newTextClient(t, nodes[0].url("/rooms"))
	b := newTextClient(t, nodes[1].url("/rooms"))
	for _, c := range []*textClient{a, holder, b} {
		c.join("r")
	}
	if got := holder.ask("claim:k"); got != "claim:true" {
		t.Fatalf("holder's claim: %s", got)
	}

	redis.Stop()
	for _, g := range nodes {
		eventually(t, "/healthz to say degraded", func() bool { return strings.HasPrefix(g.get("/healthz"), "degraded: ") })
	}
	a.send("say:r:during-a")
	b.send("say:r:during-b")
	expectInOrder(t, holder, 2, "during-a") // its node's members at once
	expectInOrder(t, b, 1, "during-b")
	redis.Start()
	for _, g := range nodes {
		eventually(t, "/healthz to say ok", func() bool { return g.get("/healthz") == "ok\n" })
	}
	expectInOrder(t, holder, 3, "during-b")
	expectInOrder(t, b, 2, "during-a")
	eventually(t, "the room to span the nodes again", func() bool { return b.ask("count:r") == "count:3" })
	if got := b.ask("claim:k"); got != "claim:false" {
		t.Errorf("the key the holder held before the restart was free after it: %s", got)
	}
	heardH, heardB := len(holder.received()), len(b.received())
	a.send("say:r:after")
	expectInOrder(t, holder, heardH, "after")
	expectInOrder(t, b, heardB, "after")

	redis.Stop() // shorter than a heartbeat
	redis.Start()
	eventually(t, "the room to span the nodes after a quick restart", func() bool { return b.ask("count:r") == "count:3" })
	eventually(t, "the key to be held again", func() bool { return b.ask("claim:k") == "claim:false" })
	holder.conn.CloseNow()
	eventually(t, "the key to be released with its holder", func() bool { return b.ask("claim:k") == "claim:true" })
	heard := len(a.received())
	b.send("say:r:last")
	expectInOrder(t, a, heard, "last")
}
