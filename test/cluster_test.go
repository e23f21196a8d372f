package test

import (
	"fmt"
	"testing"

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
