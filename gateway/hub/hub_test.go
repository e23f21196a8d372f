package hub

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moongate/moongate/gateway/client"
)

func newClients(h *Hub, n int) []*client.Client {
	out := make([]*client.Client, n)
	for i := range out {
		out[i] = client.New(&client.Request{}, client.Options{SendQueue: 4}, nil)
		h.Add(out[i])
	}
	return out
}

func ids(cs []*client.Client) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID()
	}
	return out
}

func TestMembershipAndOrder(t *testing.T) {
	h := New()
	cs := newClients(h, 3)
	for _, i := range []int{2, 0, 1} {
		if !h.Join("lobby", cs[i]) {
			t.Fatalf("client %d: first join reported false", i)
		}
	}
	if h.Join("lobby", cs[0]) {
		t.Error("second join reported true")
	}
	h.Join("side", cs[0])
	h.Join(PrivatePrefix+"inbox", cs[0])
	if got, want := ids(h.Members("lobby")), ids([]*client.Client{cs[2], cs[0], cs[1]}); !slices.Equal(got, want) {
		t.Errorf("members %v, want join order %v", got, want)
	}
	if got := h.Rooms(); !slices.Equal(got, []RoomInfo{{"lobby", 3}, {"side", 1}}) {
		t.Errorf("rooms %v", got)
	}
	if got := h.RoomsOf(cs[0]); !slices.Equal(got, []string{"lobby", "side", "~inbox"}) {
		t.Errorf("rooms of client 0: %v", got)
	}
	if h.Count("~inbox") != 1 || !h.Leave("~inbox", cs[0]) {
		t.Error("a private room is a room like any other, only not listed")
	}
	if !h.Leave("side", cs[0]) || h.Leave("side", cs[0]) || h.Count("side") != 0 || len(h.Rooms()) != 1 {
		t.Error("leaving the last member should remove the room, once")
	}
	if left := h.Remove(cs[1]); !slices.Equal(left, []string{"lobby"}) || h.Client(cs[1].ID()) != nil || h.IsMember("lobby", cs[1]) {
		t.Errorf("remove: left %v", left)
	}
	if h.Join("lobby", cs[1]) {
		t.Error("a removed client joined a room")
	}
}

func TestBroadcastSkipsExceptAndFullQueues(t *testing.T) {
	h := New()
	cs := newClients(h, 3)
	for _, c := range cs {
		h.Join("r", c)
	}
	frame := []byte{0x81, 0}
	if n := h.Broadcast("r", frame, cs[0]); n != 2 {
		t.Errorf("delivered to %d, want 2 (all but the sender)", n)
	}
	for range 3 { // fills cs[1] and cs[2]'s queues of 4 (one frame already queued)
		h.Broadcast("r", frame, cs[0])
	}
	if n := h.Broadcast("r", frame, cs[0]); n != 0 {
		t.Errorf("delivered to %d clients whose queues are full", n)
	}
	if !cs[1].Closing() || cs[0].Closing() {
		t.Error("the full queues should close their clients (1008), and only theirs")
	}
}

func TestConcurrentUse(t *testing.T) {
	h := New()
	cs := newClients(h, 50)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			room := []string{"a", "b"}[i%2]
			for range 100 {
				h.Join(room, c)
				h.Broadcast(room, []byte{0x81, 0}, c)
				h.Members(room)
				h.Leave(room, c)
			}
		}()
	}
	wg.Wait()
	if len(h.Rooms()) != 0 {
		t.Errorf("rooms left over: %v", h.Rooms())
	}
}

func TestHistoryIsKeptBoundedAndAtomicWithJoin(t *testing.T) {
	h := New()
	cs := newClients(h, 2)
	h.Join("r", cs[0])
	for i := range 5 {
		h.Publish("r", []byte{0x81, 0}, string(rune('a'+i)), nil, 3)
	}
	if got := h.History("r", -1); !slices.Equal(got, []string{"c", "d", "e"}) {
		t.Errorf("history %v, want the last 3", got)
	}
	joined, hist := h.JoinWithHistory("r", cs[1], 2)
	if !joined || !slices.Equal(hist, []string{"d", "e"}) {
		t.Errorf("join with history: %v %v", joined, hist)
	}
	h.Remove(cs[0])
	h.Remove(cs[1])
	if got := h.History("r", -1); len(got) != 3 {
		t.Errorf("history should outlive the room's members, got %v", got)
	}
}

// TestJoinSeesEachPublishOnce races joins against publishes: every entry
// must reach each joiner exactly once, in its history or in its queue.
func TestJoinSeesEachPublishOnce(t *testing.T) {
	h := New()
	publisher := newClients(h, 1)[0]
	h.Join("r", publisher)
	joiners := make([]*client.Client, 20)
	for i := range joiners {
		joiners[i] = client.New(&client.Request{}, client.Options{SendQueue: 1000}, nil)
		h.Add(joiners[i])
	}
	histories := make([][]string, len(joiners))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 500 {
			h.Publish("r", []byte{0x81, 0}, strconv.Itoa(i), publisher, 1000)
		}
	}()
	for i, c := range joiners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, histories[i] = h.JoinWithHistory("r", c, -1)
		}()
	}
	wg.Wait()
	for i, c := range joiners {
		if got := len(histories[i]) + c.Queued(); got != 500 {
			t.Errorf("joiner %d: %d in history + %d live = %d, want 500", i, len(histories[i]), c.Queued(), got)
		}
	}
}

func TestHistoryIsBoundedInBytes(t *testing.T) {
	hs := &histories{maxBytes: 1000}
	empty := func(room string) bool { return room[0] == 'a' } // rooms b and c have members
	entry := strings.Repeat("x", 100)
	for i := range 5 { // rooms a0..a4: 500 bytes
		hs.add(fmt.Sprintf("a%d", i), entry, 10, empty)
	}
	for range 20 { // 2,000 bytes to room b
		hs.add("b", entry, 50, empty)
	}
	if hs.bytes > 1000 {
		t.Fatalf("%d bytes kept, bound 1000", hs.bytes)
	}
	if len(hs.rooms) != 1 || len(hs.last("b", -1)) != 10 {
		t.Errorf("rooms %d, b keeps %d: want the empty rooms dropped first, then b's oldest entries", len(hs.rooms), len(hs.last("b", -1)))
	}
	hs.add("c", strings.Repeat("y", 1001), 10, empty)
	if hs.last("c", -1) != nil || hs.bytes > 1000 {
		t.Errorf("an entry larger than the bound was kept")
	}
	total := 0
	for _, entries := range hs.rooms {
		for _, e := range entries {
			total += len(e)
		}
	}
	if total != hs.bytes {
		t.Errorf("counted %d bytes, hold %d", hs.bytes, total)
	}
}
