package test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
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
