package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway/cluster/clustertest"
)

// startCluster runs n moongate nodes of one cluster, each serving the
// config.yaml of files with a cluster section added: the test Redis
// (skipped when it is absent, failed under CI=true), a key prefix of the
// test's own, and node names n1..nN. env is added to each node's
// environment.
func startCluster(t *testing.T, n int, files map[string]string, env ...string) []*gatewayProc {
	t.Helper()
	rdb := clustertest.Redis(t)
	ns := clustertest.Namespace(t, rdb)
	dir := t.TempDir()
	writeFiles(t, dir, files)
	nodes := make([]*gatewayProc, n)
	for i := range nodes {
		name := fmt.Sprintf("n%d", i+1)
		cfg := fmt.Sprintf("%scluster:\n  redis: %q\n  node: %s\n  prefix: %s\n", files["config.yaml"], clustertest.URL(), name, ns)
		writeFiles(t, dir, map[string]string{name + ".yaml": cfg})
		nodes[i] = startGatewayEnv(t, dir, env, "run", "-config", name+".yaml", "-listen", "127.0.0.1:0", "-log-format", "json", "-log-level", "debug")
	}
	return nodes
}

// TestClusterNickIsUniqueAcrossNodes: a guest's nick, claimed on one
// node, is refused on the others (case-insensitively), and free on any
// node once its holder has gone.
func TestClusterNickIsUniqueAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3, chatFiles(t, 2, ""))
	alice := login(t, nodes[0].url("/chat"), "alice")
	for _, g := range nodes[1:] {
		other := newChatter(t, g.url("/chat"))
		other.send(map[string]any{"type": "hello", "nick": "Alice"})
		other.expectError("nick_taken", "hello")
		other.conn.CloseNow()
	}
	alice.conn.Close(websocket.StatusNormalClosure, "")
	eventually(t, "the nick to be free on another node once its holder left", func() bool {
		c := newChatter(t, nodes[2].url("/chat"))
		defer c.conn.CloseNow()
		c.send(map[string]any{"type": "hello", "nick": "alice"})
		e := c.next()
		return e.str("type") == "welcome"
	})
}

// TestClusterRateLimitAcrossNodes: a signed-in user's joins count against
// one limit wherever the user's connections are.
func TestClusterRateLimitAcrossNodes(t *testing.T) {
	files := chatFiles(t, 2, "    auth: {secret_env: TEST_CHAT_SECRET, required: false}\n    options: {join_limit: 3, rate_window: 600}\n")
	nodes := startCluster(t, 3, files, "TEST_CHAT_SECRET=test-secret")
	tok := token(t, "test-secret", "-sub", "u-1", "-name", "Alice", "-ttl", "1h")
	tabs := make([]*chatter, len(nodes))
	for i, g := range nodes {
		tabs[i] = signedIn(t, g, tok, "Alice")
		tabs[i].join(fmt.Sprintf("room%d", i)) // one join on each node: 3, the limit
	}
	tabs[0].send(map[string]any{"type": "join", "room": "one-more"})
	tabs[0].expectError("rate_limited", "join")
}

// TestClusterChatAcrossNodes: the chat protocol with each client on a
// different node: presence, members, rooms, say and pm all span them.
func TestClusterChatAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3, chatFiles(t, 2, ""))
	alice := login(t, nodes[0].url("/chat"), "alice")
	bob := login(t, nodes[1].url("/chat"), "bob")
	carol := login(t, nodes[2].url("/chat"), "carol")
	alice.join("lobby")
	alice.send(map[string]any{"type": "who", "room": "lobby"}) // her join's presence is out
	alice.expect("members")
	if j := bob.join("lobby"); joinStrs(j["members"]) != "alice,bob" {
		t.Fatalf("bob on another node joined with members %v", j["members"])
	}
	if e := alice.expect("presence"); e.str("nick") != "bob" || e.str("event") != "join" {
		t.Fatalf("alice heard %v, want bob's join", e)
	}
	carol.join("lobby")
	for _, c := range []*chatter{alice, bob} {
		if e := c.expect("presence"); e.str("nick") != "carol" {
			t.Fatalf("%s heard %v, want carol's join", c.nick, e)
		}
	}
	carol.send(map[string]any{"type": "rooms"})
	if rooms := carol.expect("rooms")["rooms"].([]any); len(rooms) != 1 || fmt.Sprint(rooms[0].(map[string]any)["members"]) != "3" {
		t.Errorf("rooms seen from the third node: %v", rooms)
	}
	carol.send(map[string]any{"type": "say", "room": "lobby", "text": "hello from n3"})
	for _, c := range []*chatter{alice, bob, carol} {
		if e := c.expect("message"); e.str("text") != "hello from n3" || e.str("from") != "carol" {
			t.Fatalf("%s got %v", c.nick, e)
		}
	}
	alice.send(map[string]any{"type": "pm", "to": "BOB", "text": "psst"})
	for _, c := range []*chatter{bob, alice} {
		if e := c.expect("pm"); e.str("from") != "alice" || e.str("to") != "bob" || e.str("text") != "psst" {
			t.Fatalf("%s got %v, want alice's pm", c.nick, e)
		}
	}
	bob.conn.CloseNow()
	for _, c := range []*chatter{alice, carol} {
		if e := c.expect("presence"); e.str("nick") != "bob" || e.str("event") != "leave" {
			t.Fatalf("%s heard %v, want bob's leave", c.nick, e)
		}
	}
	alice.send(map[string]any{"type": "who", "room": "lobby"})
	if m := alice.expect("members"); joinStrs(m["members"]) != "alice,carol" {
		t.Errorf("members after bob left: %v", m["members"])
	}
}

// TestClusterRoomMessagesExactlyOnceInOneOrder: 50 members spread over
// three nodes, 6 of them (two on each node) saying 20 messages each at
// once: every member gets every message exactly once, and all members in
// the same order (Redis numbers each room's messages).
func TestClusterRoomMessagesExactlyOnceInOneOrder(t *testing.T) {
	nodes := startCluster(t, 3, chatFiles(t, 2, "    options: {rate_limit: 100000}\n"))
	const members, senders, says = 50, 6, 20
	clients := make([]*chatter, members)
	for i := range clients {
		clients[i] = login(t, nodes[i%len(nodes)].url("/chat"), fmt.Sprintf("m%02d", i))
		clients[i].join("order")
	}
	for i, c := range clients { // the presence of later joins
		for range members - 1 - i {
			c.expect("presence")
		}
	}
	done := make(chan struct{})
	for _, c := range clients[:senders] {
		go func() {
			defer func() { done <- struct{}{} }()
			for n := range says {
				c.send(map[string]any{"type": "say", "room": "order", "text": fmt.Sprint(n)})
			}
		}()
	}
	for range senders {
		<-done
	}
	var first []string
	for _, c := range clients {
		var seq []string
		seen := map[string]bool{}
		for range senders * says {
			id := c.expect("message").str("id")
			if seen[id] {
				t.Fatalf("%s got message %s twice", c.nick, id)
			}
			seen[id] = true
			seq = append(seq, id)
		}
		if first == nil {
			first = seq
			continue
		}
		if i := firstDifference(first, seq); i >= 0 {
			t.Fatalf("%s saw message %d as %s, %s saw %s: members see different orders", clients[0].nick, i, first[i], c.nick, seq[i])
		}
	}
	for _, c := range clients {
		c.quiet()
	}
}

// TestClusterNodeKilled: a node killed with SIGKILL: within 15 s the
// others drop its clients from every room (their members hear the leave)
// and release what those clients held (a guest's nick can be taken
// again); the surviving nodes' clients notice nothing else.
func TestClusterNodeKilled(t *testing.T) {
	nodes := startCluster(t, 3, chatFiles(t, 2, ""))
	alice := login(t, nodes[0].url("/chat"), "alice")
	bob := login(t, nodes[1].url("/chat"), "bob")
	carol := login(t, nodes[2].url("/chat"), "carol")
	alice.join("lobby")
	alice.send(map[string]any{"type": "who", "room": "lobby"})
	alice.expect("members")
	bob.join("lobby")
	alice.expect("presence")
	carol.join("lobby")
	alice.expect("presence")
	bob.expect("presence")

	killed := time.Now()
	nodes[2].kill()
	for _, c := range []*chatter{alice, bob} {
		e := c.expect("presence")
		if e.str("nick") != "carol" || e.str("event") != "leave" || e.str("room") != "lobby" {
			t.Fatalf("%s heard %v, want carol's leave", c.nick, e)
		}
	}
	if took := time.Since(killed); took > 15*time.Second {
		t.Errorf("the killed node's clients left after %v, want within 15 s", took)
	} else {
		t.Logf("the killed node's clients left after %v", took)
	}
	alice.send(map[string]any{"type": "who", "room": "lobby"})
	if m := alice.expect("members"); joinStrs(m["members"]) != "alice,bob" {
		t.Errorf("members after the kill: %v", m["members"])
	}
	login(t, nodes[0].url("/chat"), "Carol") // her nick was released
	bob.send(map[string]any{"type": "say", "room": "lobby", "text": "still here"})
	for _, c := range []*chatter{alice, bob} {
		if e := c.expect("message"); e.str("text") != "still here" {
			t.Fatalf("%s got %v", c.nick, e)
		}
	}
	alice.quiet()
	bob.quiet()
}
