package hub

import (
	"sync"

	"github.com/moongate/moongate/gateway/client"
)

// Limits of room history.
const (
	// MaxHistory is the most entries one room keeps.
	MaxHistory = 1000
	// MaxHistoryRooms is the most rooms that keep history. When it is
	// reached, the history of a room without members is dropped to make
	// room; when every such room has members, the new entry is not kept.
	MaxHistoryRooms = 10000
	// MaxHistoryBytes bounds the entries of all rooms together. Past it,
	// the histories of rooms without members are dropped, then the oldest
	// entries of the room being published to; an entry larger than the
	// whole bound is not kept.
	MaxHistoryBytes = 64 << 20
)

// histories holds the recent entries published to each room. It outlives
// membership: a room that empties keeps its history for the next joiner.
type histories struct {
	mu       sync.Mutex
	rooms    map[string][]string
	bytes    int // of every entry kept
	maxBytes int // MaxHistoryBytes, or less in tests
}

// add appends entry to room's history, keeping the last keep entries and
// the total within the byte bound. isEmpty reports whether a room has no
// members (for eviction).
func (hs *histories) add(room, entry string, keep int, isEmpty func(string) bool) {
	keep = min(keep, MaxHistory)
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.rooms == nil {
		hs.rooms = make(map[string][]string)
	}
	if hs.maxBytes == 0 {
		hs.maxBytes = MaxHistoryBytes
	}
	if len(entry) > hs.maxBytes {
		return
	}
	entries, ok := hs.rooms[room]
	if !ok && len(hs.rooms) >= MaxHistoryRooms && !hs.evictOne(room, isEmpty) {
		return
	}
	entries = append(entries, entry)
	hs.bytes += len(entry)
	entries = hs.dropOldest(entries, len(entries)-keep)
	for hs.bytes > hs.maxBytes && hs.evictOne(room, isEmpty) {
	}
	if over := hs.bytes - hs.maxBytes; over > 0 {
		n := 0
		for dropped := 0; dropped < over; n++ {
			dropped += len(entries[n])
		}
		entries = hs.dropOldest(entries, n)
	}
	hs.rooms[room] = entries
}

// dropOldest removes the first n (if positive) of a room's entries.
func (hs *histories) dropOldest(entries []string, n int) []string {
	if n <= 0 {
		return entries
	}
	for _, e := range entries[:n] {
		hs.bytes -= len(e)
	}
	kept := copy(entries, entries[n:])
	clear(entries[kept:])
	return entries[:kept]
}

// evictOne drops the history of one room without members, other than
// keep.
func (hs *histories) evictOne(keep string, isEmpty func(string) bool) bool {
	for name, entries := range hs.rooms {
		if name != keep && isEmpty(name) {
			hs.dropOldest(entries, len(entries))
			delete(hs.rooms, name)
			return true
		}
	}
	return false
}

// last returns a copy of room's last n entries, oldest first.
func (hs *histories) last(room string, n int) []string {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	entries := hs.rooms[room]
	if n < 0 || n > len(entries) {
		n = len(entries)
	}
	return append([]string(nil), entries[len(entries)-n:]...)
}

// Publish queues frame to every member of room except the client except,
// and when keep > 0 also appends entry (the frame's payload) to the room's
// history, keeping its last keep entries (at most MaxHistory). Both happen
// under the room's lock, so the history holds entries in the order members
// received them, and a client that joins with JoinWithHistory (which
// excludes every publish) gets each published entry exactly once: in its
// history or live.
func (h *Hub) Publish(name string, frame []byte, entry string, except *client.Client, keep int) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r := h.rooms[name]
	if r != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
	}
	if keep > 0 {
		h.history.add(name, entry, keep, func(n string) bool { return h.size(n) == 0 })
	}
	if r == nil {
		return 0
	}
	return r.sendLocked(frame, except)
}

// JoinWithHistory puts c in room like Join and returns, taken at the same
// instant, the room's last n history entries, oldest first.
func (h *Hub) JoinWithHistory(room string, c *client.Client, n int) (bool, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	joined := h.joinLocked(room, c)
	return joined, h.history.last(room, n)
}

// History returns room's last n history entries (all when n < 0), oldest first.
func (h *Hub) History(room string, n int) []string {
	return h.history.last(room, n)
}
