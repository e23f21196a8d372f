package test

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
)

// TestChatDeliversEveryMessageExactlyOnce: 50 clients in 5 rooms each say
// 20 messages; each member gets every message of its room once, in each
// sender's order, and nothing of other rooms. Run with 1 and 4 states.
func TestChatDeliversEveryMessageExactlyOnce(t *testing.T) {
	for _, states := range []int{1, 4} {
		t.Run(fmt.Sprintf("states=%d", states), func(t *testing.T) {
			g := startGateway(t, chatFiles(t, states, ""))
			const rooms, perRoom, says = 5, 10, 20
			clients := make([]*chatter, rooms*perRoom)
			for i := range clients {
				clients[i] = login(t, g.url("/chat"), fmt.Sprintf("user%02d", i))
			}
			for i, c := range clients {
				c.join(fmt.Sprintf("room%d", i%rooms))
			}
			// Drain the presence events of joins that came after each client's own.
			for i, c := range clients {
				for range perRoom - 1 - i/rooms {
					if e := c.expect("presence"); e.str("event") != "join" {
						t.Fatalf("presence %v", e)
					}
				}
			}
			var wg sync.WaitGroup
			for i, c := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for n := range says {
						c.send(map[string]any{"type": "say", "room": fmt.Sprintf("room%d", i%rooms), "text": fmt.Sprintf("%s #%d", c.nick, n)})
					}
				}()
			}
			wg.Wait()
			for i, c := range clients {
				room := fmt.Sprintf("room%d", i%rooms)
				next := map[string]int{} // sender -> next expected number
				for range perRoom * says {
					e := c.expect("message")
					var from string
					var n int
					fmt.Sscanf(e.str("text"), "%s #%d", &from, &n)
					if e.str("room") != room || e.str("from") != from || e.str("id") == "" || e["ts"] == nil {
						t.Fatalf("%s got %v", c.nick, e)
					}
					if n != next[from] {
						t.Fatalf("%s: from %s got #%d, want #%d (lost, duplicated or out of order)", c.nick, from, n, next[from])
					}
					next[from]++
				}
				c.quiet()
			}
			// who and presence agree with the joins; history is the last 50.
			who := clients[0]
			who.send(map[string]any{"type": "who", "room": "room0"})
			members := strs(who.expect("members")["members"])
			want := []string{}
			for i := 0; i < len(clients); i += rooms {
				want = append(want, clients[i].nick)
			}
			if !slices.Equal(members, want) {
				t.Errorf("who room0 = %v, want %v in join order", members, want)
			}
			late := login(t, g.url("/chat"), "late")
			joined := late.join("room0")
			history, _ := joined["history"].([]any)
			if len(history) != 50 {
				t.Fatalf("history has %d messages, want 50", len(history))
			}
			seen := map[string]bool{}
			for _, h := range history {
				m := event(h.(map[string]any))
				if m.str("type") != "message" || m.str("room") != "room0" || seen[m.str("id")] {
					t.Fatalf("history entry %v", m)
				}
				seen[m.str("id")] = true
			}
			if !slices.Equal(strs(joined["members"]), append(want, "late")) {
				t.Errorf("joined members %v", joined["members"])
			}
			for i := 0; i < len(clients); i += rooms {
				if e := clients[i].expect("presence"); e.str("nick") != "late" || e.str("event") != "join" {
					t.Errorf("presence %v", e)
				}
			}
		})
	}
}

func TestChatPresenceRoomsAndPrivateMessages(t *testing.T) {
	for _, states := range []int{1, 4} {
		t.Run(fmt.Sprintf("states=%d", states), func(t *testing.T) {
			g := startGateway(t, chatFiles(t, states, ""))
			alice := login(t, g.url("/chat"), "alice")
			bob := login(t, g.url("/chat"), "bob")
			if j := alice.join("lobby"); joinStrs(j["members"]) != "alice" || len(j["history"].([]any)) != 0 {
				t.Fatalf("joined %v", j)
			}
			// Alice's join handler announces her after its reply: let it
			// finish (her next request runs after it) before Bob joins, or
			// Bob, on another state, may hear her join too (see
			// docs/chat-protocol.md).
			alice.send(map[string]any{"type": "who", "room": "lobby"})
			alice.expect("members")
			bob.join("lobby")
			bob.join("side")
			if e := alice.expect("presence"); e.str("nick") != "bob" || e.str("event") != "join" || e.str("room") != "lobby" {
				t.Fatalf("presence %v", e)
			}
			alice.send(map[string]any{"type": "rooms"})
			rooms := alice.expect("rooms")["rooms"].([]any)
			var list []string
			for _, r := range rooms {
				m := r.(map[string]any)
				list = append(list, fmt.Sprint(m["name"], ":", m["members"]))
			}
			sort.Strings(list)
			if !slices.Equal(list, []string{"lobby:2", "side:1"}) {
				t.Errorf("rooms %v", list)
			}
			alice.send(map[string]any{"type": "pm", "to": "BOB", "text": "psst"})
			for _, c := range []*chatter{bob, alice} {
				if e := c.expect("pm"); e.str("from") != "alice" || e.str("to") != "bob" || e.str("text") != "psst" || e.str("id") == "" {
					t.Errorf("%s got pm %v", c.nick, e)
				}
			}
			bob.send(map[string]any{"type": "leave", "room": "lobby"})
			bob.expect("left")
			if e := alice.expect("presence"); e.str("nick") != "bob" || e.str("event") != "leave" {
				t.Fatalf("presence %v", e)
			}
			bob.join("lobby")
			alice.expect("presence")
			bob.conn.CloseNow()
			if e := alice.expect("presence"); e.str("nick") != "bob" || e.str("event") != "leave" || e.str("room") != "lobby" {
				t.Fatalf("presence on disconnect %v", e)
			}
			alice.send(map[string]any{"type": "who", "room": "lobby"})
			if m := alice.expect("members"); joinStrs(m["members"]) != "alice" {
				t.Errorf("members after disconnect %v", m)
			}
			// The nick is free again once its holder is gone.
			login(t, g.url("/chat"), "Bob")
		})
	}
}

// TestChatOnline: a client asks which nicks are connected; one who
// disconnected is not, as soon as their leave is heard, and is again once
// back. With 4 states the asker and the asked are served by different ones.
func TestChatOnline(t *testing.T) {
	for _, states := range []int{1, 4} {
		t.Run(fmt.Sprintf("states=%d", states), func(t *testing.T) {
			g := startGateway(t, chatFiles(t, states, ""))
			alice := login(t, g.url("/chat"), "alice")
			bob := login(t, g.url("/chat"), "bob")
			online := func(want map[string]bool, nicks ...string) {
				if nicks == nil {
					nicks = []string{}
				}
				t.Helper()
				alice.send(map[string]any{"type": "online", "nicks": nicks})
				got := alice.expect("online")["nicks"]
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("online %v: %v, want %v", nicks, got, want)
				}
			}
			online(map[string]bool{"bob": true, "Bob": true, "carol": false}, "bob", "Bob", "carol")
			online(map[string]bool{}) // an empty list: an empty answer
			alice.join("lobby")
			bob.join("lobby")
			alice.expect("presence")
			bob.conn.CloseNow()
			if e := alice.expect("presence"); e.str("nick") != "bob" || e.str("event") != "leave" {
				t.Fatalf("presence %v", e)
			}
			online(map[string]bool{"bob": false}, "bob")
			login(t, g.url("/chat"), "bob")
			online(map[string]bool{"bob": true}, "bob")
		})
	}
}
