package test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway/cluster/clustertest"
)

// startCluster runs n moongate nodes of one cluster, each serving the
// config.yaml of files with a cluster section added: the test Redis
// (skipped when it is absent, failed under CI=true), a key prefix of the
// test's own, and node names n1..nN; each node runs in a folder of its
// own (g.cmd.Dir) with a copy of files. env is added to each node's
// environment.
func startCluster(t *testing.T, n int, files map[string]string, env ...string) []*gatewayProc {
	t.Helper()
	return startClusterAt(t, clustertest.URL(), n, files, env...)
}

// startClusterAt is startCluster with the nodes reaching Redis at url (a
// proxy to the test Redis, say).
func startClusterAt(t *testing.T, url string, n int, files map[string]string, env ...string) []*gatewayProc {
	t.Helper()
	rdb := clustertest.Redis(t)
	ns := clustertest.Namespace(t, rdb)
	nodes := make([]*gatewayProc, n)
	for i := range nodes {
		dir := t.TempDir() // each node its own files: each reloads its own
		writeFiles(t, dir, files)
		name := fmt.Sprintf("n%d", i+1)
		cfg := fmt.Sprintf("%scluster:\n  redis: %q\n  node: %s\n  prefix: %s\n", files["config.yaml"], url, name, ns)
		writeFiles(t, dir, map[string]string{name + ".yaml": cfg})
		nodes[i] = startGatewayEnv(t, dir, env, "run", "-config", name+".yaml", "-listen", "127.0.0.1:0", "-log-format", "json", "-log-level", "debug")
	}
	return nodes
}

// spread logs in one chatter per nick, on the nodes in turn.
func spread(t *testing.T, nodes []*gatewayProc, nicks ...string) []*chatter {
	t.Helper()
	cs := make([]*chatter, len(nicks))
	for i, nick := range nicks {
		cs[i] = login(t, nodes[i%len(nodes)].url("/chat"), nick)
	}
	return cs
}

// joinInTurn has each chatter join room, one after the other, each once
// the join before it is done (its join handler announces the joiner after
// the reply: a who, answered after it, says it has run), every earlier
// member hearing each later join. It returns the joined events.
func joinInTurn(t *testing.T, room string, cs ...*chatter) []event {
	t.Helper()
	joined := make([]event, len(cs))
	for i, c := range cs {
		joined[i] = c.join(room)
		c.send(map[string]any{"type": "who", "room": room})
		c.expect("members")
		for _, earlier := range cs[:i] {
			if e := earlier.expect("presence"); e.str("nick") != c.nick || e.str("event") != "join" {
				t.Fatalf("%s heard %v, want %s's join", earlier.nick, e, c.nick)
			}
		}
	}
	return joined
}

// expectOneOrder reads total room messages on each chatter (skip of them
// already taken on the first) and fails unless each gets every message
// once and all see them in the same order.
func expectOneOrder(t *testing.T, cs []*chatter, total, skip int) {
	t.Helper()
	var first []string
	for i, c := range cs {
		var seq []string
		seen := map[string]bool{}
		n := total
		if i == 0 {
			n -= skip
		}
		for range n {
			id := c.expect("message").str("id")
			if seen[id] {
				t.Fatalf("%s got message %s twice", c.nick, id)
			}
			seen[id] = true
			if len(seq) > 0 && idNumber(t, id) <= idNumber(t, seq[len(seq)-1]) {
				t.Fatalf("%s got message %s after %s: ids must increase within a room", c.nick, id, seq[len(seq)-1])
			}
			seq = append(seq, id)
		}
		if i == 0 && skip > 0 {
			continue // its sequence lacks what was taken
		}
		if first == nil {
			first = seq
		} else if j := firstDifference(first, seq); j >= 0 {
			t.Fatalf("%s saw message %d as %s, where another member saw %s: members see different orders", c.nick, j, seq[j], first[j])
		}
	}
}

// idNumber returns the number of a chat message id: the id itself with a
// database, what follows the start time ("<start>-<n>") without.
func idNumber(t *testing.T, id string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(id[strings.LastIndex(id, "-")+1:], 10, 64)
	if err != nil {
		t.Fatalf("message id %q: %v", id, err)
	}
	return n
}

// nicks returns "<prefix>00" ... for n chatters.
func nicks(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
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
	cs := spread(t, nodes, "alice", "bob", "carol")
	alice, bob, carol := cs[0], cs[1], cs[2]
	if j := joinInTurn(t, "lobby", cs...); joinStrs(j[1]["members"]) != "alice,bob" {
		t.Fatalf("bob on another node joined with members %v", j[1]["members"])
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
// the same order (Redis numbers each room's messages), and their ids
// increase in that order.
func TestClusterRoomMessagesExactlyOnceInOneOrder(t *testing.T) {
	nodes := startCluster(t, 3, chatFiles(t, 2, "    options: {rate_limit: 100000}\n"))
	const members, senders, says = 50, 6, 20
	clients := spread(t, nodes, nicks("m", members)...)
	joinInTurn(t, "order", clients...)
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
	expectOneOrder(t, clients, senders*says, 0)
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
	cs := spread(t, nodes, "alice", "bob", "carol")
	alice, bob := cs[0], cs[1]
	joinInTurn(t, "lobby", cs...)

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

// restart runs g's command again (g has stopped) and waits until it listens.
func (g *gatewayProc) restart(t *testing.T) *gatewayProc {
	t.Helper()
	cmd := exec.Command(g.cmd.Path, g.cmd.Args[1:]...)
	cmd.Dir, cmd.Env = g.cmd.Dir, g.cmd.Env
	return launch(t, cmd)
}

// TestClusterNodeRestartRecovery: a node stopped with SIGTERM while the
// others run: its clients reconnect to another node and, joining with the
// last id they saw, get exactly what they missed; the node, started
// again, serves as before.
func TestClusterNodeRestartRecovery(t *testing.T) {
	nodes := startCluster(t, 3, chatFiles(t, 2, ""))
	cs := spread(t, nodes, "alice", "bob")
	alice, bob := cs[0], cs[1]
	joinInTurn(t, "lobby", cs...)
	alice.send(map[string]any{"type": "say", "room": "lobby", "text": "m1"})
	alice.expect("message")
	last := bob.expect("message").str("id")

	if code := nodes[1].stop(); code != 0 {
		t.Fatalf("SIGTERM: exit code %d", code)
	}
	if e := alice.expect("presence"); e.str("nick") != "bob" || e.str("event") != "leave" {
		t.Fatalf("alice heard %v, want bob's leave", e)
	}
	for _, text := range []string{"m2", "m3"} {
		alice.send(map[string]any{"type": "say", "room": "lobby", "text": text})
		alice.expect("message")
	}
	bob = login(t, nodes[2].url("/chat"), "bob")
	bob.send(map[string]any{"type": "join", "room": "lobby", "since": last})
	j := bob.expect("joined")
	var missed []string
	for _, h := range j["history"].([]any) {
		missed = append(missed, event(h.(map[string]any)).str("text"))
	}
	if j.str("since") != last || j["recovered"] != true || strings.Join(missed, ",") != "m2,m3" {
		t.Fatalf("rejoined on another node since %s: %v, want m2,m3 recovered", last, j)
	}
	alice.expect("presence")
	alice.send(map[string]any{"type": "say", "room": "lobby", "text": "m4"})
	if e := bob.expect("message"); e.str("text") != "m4" {
		t.Fatalf("bob got %v, want m4", e)
	}
	bob.quiet()

	again := nodes[1].restart(t)
	carol := login(t, again.url("/chat"), "carol")
	if j := carol.join("lobby"); joinStrs(j["members"]) != "alice,bob,carol" {
		t.Errorf("the restarted node sees members %v", j["members"])
	}
}

// TestClusterReloadOneNodeUnderLoad: the chat script saved anew on one
// node while 30 members on three nodes chat: that node reloads, the others
// do not, and every member gets every message once, in one order.
func TestClusterReloadOneNodeUnderLoad(t *testing.T) {
	files := chatFiles(t, 2, "    options: {rate_limit: 100000}\n")
	nodes := startCluster(t, 3, files)
	const members, senders = 30, 6
	clients := spread(t, nodes, nicks("m", members)...)
	joinInTurn(t, "load", clients...)
	// The senders say until the reload is done, and 20 more each.
	reloaded := make(chan struct{})
	counts := make(chan int, senders)
	for _, c := range clients[:senders] {
		go func() {
			pace := time.NewTicker(5 * time.Millisecond) // a steady load, not a flood
			defer pace.Stop()
			n := 0
			for extra := 20; extra > 0; n++ {
				<-pace.C
				select {
				case <-reloaded:
					extra--
				default:
				}
				c.send(map[string]any{"type": "say", "room": "load", "text": fmt.Sprint(n)})
			}
			counts <- n
		}()
	}
	clients[0].expect("message") // the load is on
	script := filepath.Join(nodes[0].cmd.Dir, "chat.lua")
	writeFiles(t, nodes[0].cmd.Dir, map[string]string{"chat.lua": files["chat.lua"] + "\n-- saved again\n"})
	eventually(t, "node 1 to reload "+script, func() bool { return nodes[0].logs.count(`"script reloaded"`) == 1 })
	close(reloaded)
	total := 0
	for range senders {
		total += <-counts
	}
	t.Logf("%d messages said, the reload among them", total)
	expectOneOrder(t, clients, total, 1)
	for _, g := range nodes[1:] {
		if n := g.logs.count(`"script reloaded"`); n != 0 {
			t.Errorf("a node whose files did not change reloaded %d times", n)
		}
	}
}

// TestClusterReadmeCommands: the README's "Run a cluster": three gateways
// started in one checkout with -cluster (the example config, its SQLite
// file shared) serve one chat.
func TestClusterReadmeCommands(t *testing.T) {
	rdb := clustertest.Redis(t)
	ns := clustertest.Namespace(t, rdb)
	dir := exampleCopy(t)
	var nodes []*gatewayProc
	for range 3 {
		nodes = append(nodes, startGatewayIn(t, dir, "-listen", "127.0.0.1:0", "-cluster", clustertest.URL(), "-cluster-prefix", ns, "-log-format", "json"))
	}
	cs := spread(t, nodes, "alice", "bob")
	alice, bob := cs[0], cs[1]
	joinInTurn(t, "lobby", cs...)
	bob.send(map[string]any{"type": "say", "room": "lobby", "text": "hi from 8082"})
	if e := alice.expect("message"); e.str("text") != "hi from 8082" {
		t.Fatalf("alice got %v", e)
	}
	carol := login(t, nodes[2].url("/chat"), "carol")
	if j := carol.join("lobby"); joinStrs(j["members"]) != "alice,bob,carol" || len(j["history"].([]any)) != 1 {
		t.Errorf("the third node's join: %v", j)
	}
}

// TestClusterFlagsRefused: a bad -cluster, -node or -cluster-prefix stops
// moongate run at once with status 2 and says which flag and why.
func TestClusterFlagsRefused(t *testing.T) {
	dir := exampleCopy(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-cluster", "http://127.0.0.1:6379"}, "-cluster: a Redis URL starts with redis://"},
		{[]string{"-cluster", "redis://127.0.0.1:6379", "-node", "a b"}, "-node: a node name is"},
		{[]string{"-cluster", "redis://127.0.0.1:6379", "-cluster-prefix", "a:b"}, "-cluster-prefix: a prefix is"},
		{[]string{"-node", "n1"}, "a cluster needs its Redis server: give -cluster URL"},
	} {
		cmd := exec.Command(moongateBin, append([]string{"run", "-listen", "127.0.0.1:0"}, tc.args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("moongate run %q: exit %d (%v), output %q; want 2 and %q", tc.args, code, err, out, tc.want)
		}
	}
}
