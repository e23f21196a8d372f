package test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/auth"
)

// TestChatRoomHasOneOrder: with 2 states, 8 senders (so 4 on each state)
// say 40 messages each at once in one room. Every member sees the same
// sequence of messages, and a late joiner's history is the end of it.
func TestChatRoomHasOneOrder(t *testing.T) {
	g := startGateway(t, chatFiles(t, 2, "    options: {rate_limit: 100000}\n"))
	const members, senders, says = 12, 8, 40
	clients := make([]*chatter, members)
	for i := range clients {
		clients[i] = login(t, g.url("/chat"), fmt.Sprintf("m%02d", i))
		clients[i].join("order")
	}
	for i, c := range clients { // the presence of later joins
		for range members - 1 - i {
			c.expect("presence")
		}
	}
	var wg sync.WaitGroup
	for _, c := range clients[:senders] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range says {
				c.send(map[string]any{"type": "say", "room": "order", "text": fmt.Sprint(n)})
			}
		}()
	}
	wg.Wait()
	var first []string
	for _, c := range clients {
		var seq []string
		for range senders * says {
			seq = append(seq, c.expect("message").str("id"))
		}
		if first == nil {
			first = seq
			continue
		}
		if i := firstDifference(first, seq); i >= 0 {
			t.Fatalf("%s saw message %d as %s, %s saw %s: members see different orders", clients[0].nick, i, first[i], c.nick, seq[i])
		}
	}
	late := login(t, g.url("/chat"), "late")
	var history []string
	for _, h := range late.join("order")["history"].([]any) {
		history = append(history, event(h.(map[string]any)).str("id"))
	}
	if want := first[len(first)-len(history):]; len(history) != 50 || !slices.Equal(history, want) {
		t.Errorf("history %v, want the last 50 of what members saw %v", history, want)
	}
}

// firstDifference returns the first index where a and b differ, or -1.
func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

// signInChat serves chat with 2 states, sign-in (required or not) with the
// secret "test-secret", and extra endpoint lines.
func signInChat(t *testing.T, required bool, extra string) *gatewayProc {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, chatFiles(t, 2, fmt.Sprintf("    auth: {secret_env: TEST_CHAT_SECRET, required: %v}\n%s", required, extra)))
	return startGatewayEnv(t, dir, []string{"TEST_CHAT_SECRET=test-secret"},
		"run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
}

// signedIn connects with tok and says hello; the welcome must name nick.
func signedIn(t *testing.T, g *gatewayProc, tok, nick string) *chatter {
	t.Helper()
	c := newChatter(t, g.url("/chat?token="+tok))
	c.nick = nick
	c.send(map[string]any{"type": "hello"})
	if w := c.expect("welcome"); w.str("nick") != nick {
		t.Fatalf("welcome %v, want %s", w, nick)
	}
	return c
}

// TestChatSameUserOnTwoConnections: a signed-in user's second tab chats
// under the same nick; presence shows the user once (join with the first
// connection in a room, leave with the last); a pm reaches every tab of
// both sides; the nick is the user's again once every tab closed.
func TestChatSameUserOnTwoConnections(t *testing.T) {
	g := signInChat(t, true, "")
	alice := token(t, "test-secret", "-sub", "u-1", "-name", "Alice", "-ttl", "1h")
	tab1 := signedIn(t, g, alice, "Alice")
	tab1.join("lobby")
	bob := signedIn(t, g, token(t, "test-secret", "-sub", "u-2", "-name", "Bob", "-ttl", "1h"), "Bob")
	bob.join("lobby")
	tab1.expect("presence")

	tab2 := signedIn(t, g, alice, "Alice") // on the other state (round robin)
	j := tab2.join("lobby")
	if got := joinStrs(j["members"]); got != "Alice,Bob" {
		t.Errorf("joined members %q, want each user once", got)
	}
	bob.quiet() // no second presence join for Alice
	tab1.quiet()
	bob.send(map[string]any{"type": "rooms"})
	if r := bob.expect("rooms")["rooms"].([]any); len(r) != 1 || fmt.Sprint(r[0].(map[string]any)["members"]) != "2" {
		t.Errorf("rooms %v, want lobby with 2 users (and no private room)", r)
	}

	bob.send(map[string]any{"type": "pm", "to": "alice", "text": "psst"})
	for _, c := range []*chatter{tab1, tab2, bob} {
		if e := c.expect("pm"); e.str("from") != "Bob" || e.str("to") != "Alice" || e.str("text") != "psst" {
			t.Errorf("%s got %v", c.nick, e)
		}
	}
	tab2.send(map[string]any{"type": "pm", "to": "Bob", "text": "hi from tab 2"})
	for _, c := range []*chatter{tab1, tab2, bob} {
		if e := c.expect("pm"); e.str("from") != "Alice" || e.str("text") != "hi from tab 2" {
			t.Errorf("%s got %v", c.nick, e)
		}
	}
	tab2.send(map[string]any{"type": "say", "room": "lobby", "text": "from tab 2"})
	for _, c := range []*chatter{tab1, tab2, bob} {
		if e := c.expect("message"); e.str("from") != "Alice" || e.str("text") != "from tab 2" {
			t.Errorf("%s got %v", c.nick, e)
		}
	}

	tab1.conn.CloseNow()
	bob.send(map[string]any{"type": "who", "room": "lobby"})
	if m := bob.expect("members"); joinStrs(m["members"]) != "Alice,Bob" && joinStrs(m["members"]) != "Bob,Alice" {
		t.Errorf("after one tab closed: members %v, want Alice still there", m)
	}
	tab2.send(map[string]any{"type": "leave", "room": "lobby"})
	tab2.expect("left")
	if e := bob.expect("presence"); e.str("nick") != "Alice" || e.str("event") != "leave" {
		t.Errorf("presence %v, want Alice leaving with her last connection", e)
	}
	tab2.join("lobby")
	if e := bob.expect("presence"); e.str("nick") != "Alice" || e.str("event") != "join" {
		t.Errorf("presence %v", e)
	}
	tab2.conn.CloseNow()
	if e := bob.expect("presence"); e.str("nick") != "Alice" || e.str("event") != "leave" {
		t.Errorf("presence %v, want Alice gone with her last connection", e)
	}
	bob.send(map[string]any{"type": "pm", "to": "Alice", "text": "still there?"})
	bob.expectError("no_such_user", "pm")
	signedIn(t, g, alice, "Alice") // the nick is still hers

	// Another user whose token has the same name cannot have it.
	other := newChatter(t, g.url("/chat?token="+token(t, "test-secret", "-sub", "u-3", "-name", "alice", "-ttl", "1h")))
	other.send(map[string]any{"type": "hello"})
	other.expectError("nick_taken", "hello")
}

// TestChatGuestsCannotTakeASignedInNick: where guests are allowed, a
// signed-in user's nick is theirs while they are connected and for
// options.nick_hold seconds after; a signed-in user cannot pick another
// nick; a guest holding a name first keeps it, and the user is told.
func TestChatGuestsCannotTakeASignedInNick(t *testing.T) {
	g := signInChat(t, false, "    options: {nick_hold: 5}\n")
	alice := token(t, "test-secret", "-sub", "u-1", "-name", "Alice", "-ttl", "1h")
	tab := signedIn(t, g, alice, "Alice")

	guest := newChatter(t, g.url("/chat"))
	guest.send(map[string]any{"type": "hello", "nick": "ALICE"})
	guest.expectError("nick_taken", "hello")

	picky := newChatter(t, g.url("/chat?token="+alice))
	picky.send(map[string]any{"type": "hello", "nick": "mallory"})
	picky.expectError("invalid_nick", "hello")

	watcher := login(t, g.url("/chat"), "watcher")
	watcher.join("lobby")
	tab.join("lobby")
	watcher.expect("presence")
	tab.conn.CloseNow()
	if e := watcher.expect("presence"); e.str("event") != "leave" {
		t.Fatalf("presence %v", e)
	}
	guest.send(map[string]any{"type": "hello", "nick": "alice"})
	e := guest.expectError("nick_taken", "hello") // held for her
	if !strings.Contains(e.str("message"), "signed-in") {
		t.Errorf("message %q should say the nick belongs to a signed-in user", e.str("message"))
	}
	// Once the hold has expired a guest may take it; then Alice is told.
	eventually(t, "the hold to expire", func() bool {
		guest.send(map[string]any{"type": "hello", "nick": "alice"})
		return guest.next().str("type") == "welcome"
	})
	late := newChatter(t, g.url("/chat?token="+alice))
	late.send(map[string]any{"type": "hello"})
	late.expectError("nick_taken", "hello")
}

// TestChatTokenNameMustBeText: a token whose name is not a string chats
// under its sub, never under a Lua value's text (no heap address).
func TestChatTokenNameMustBeText(t *testing.T) {
	g := signInChat(t, true, "")
	for i, name := range []any{map[string]any{"first": "Eve"}, []any{"Eve"}, true} {
		sub := fmt.Sprintf("eve-%d", i)
		tok, err := auth.Sign([]byte("test-secret"), sub, "", time.Hour, map[string]any{"name": name})
		if err != nil {
			t.Fatal(err)
		}
		signedIn(t, g, tok, sub)
	}
}

// TestChatJoinIsRateLimited: joins, which send a room's history, count
// against options.join_limit per window; past it, a join gets rate_limited
// and no history; the connection stays.
func TestChatJoinIsRateLimited(t *testing.T) {
	g := startGateway(t, chatFiles(t, 2, "    options: {join_limit: 3, rate_window: 60}\n"))
	c := login(t, g.url("/chat"), "joiner")
	for range 3 {
		c.join("lobby")
	}
	c.send(map[string]any{"type": "join", "room": "lobby"})
	c.expectError("rate_limited", "join")
	c.send(map[string]any{"type": "join", "room": "other"})
	c.expectError("rate_limited", "join")
	c.send(map[string]any{"type": "say", "room": "lobby", "text": "still here"})
	c.expect("message")
}

// TestChatRejoinFloodIsBounded: a room's history is 50 messages of 2,000
// control characters (each 6 bytes as JSON), so one joined answer is about
// 600 KB. A client that sends 100 joins at once gets 10 answers with
// history (the default join_limit) and 90 small rate_limited errors.
func TestChatRejoinFloodIsBounded(t *testing.T) {
	// A send queue deep enough for the ten answers (600 KB each): this test
	// is about the join limit; a reader too slow for the default 1 MiB is
	// closed (TestMemoryAttackChatHistoryJoins).
	g := startGateway(t, chatFiles(t, 2, "    max_message_bytes: 65536\n    send_queue_bytes: 64MiB\n"+
		"    options: {rate_limit: 1000, rate_window: 60}\n"))
	filler := login(t, g.url("/chat"), "filler")
	filler.join("big")
	text := strings.Repeat("\x01", 2000)
	for range 50 {
		filler.send(map[string]any{"type": "say", "room": "big", "text": text})
		filler.expect("message")
	}
	flood := newChatter(t, g.url("/chat"))
	flood.send(map[string]any{"type": "hello", "nick": "flood"})
	flood.expect("welcome")
	for range 100 {
		flood.sendRaw(`{"type":"join","room":"big"}`)
	}
	joined, limited, bytes := 0, 0, 0
	for range 100 {
		e := flood.next()
		switch {
		case e.str("type") == "joined":
			joined++
			raw, _ := json.Marshal(e)
			bytes += len(raw)
		case e.str("code") == "rate_limited" && e.str("ref") == "join":
			limited++
		default:
			t.Fatalf("got %v", e)
		}
	}
	if joined != 10 || limited != 90 {
		t.Errorf("%d joins answered and %d refused, want 10 and 90", joined, limited)
	}
	t.Logf("100 joins in a burst: %d answered (%d bytes of history and members), %d refused", joined, bytes, limited)
}
