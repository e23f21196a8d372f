package hub

import "github.com/moongate/moongate/gateway/client"

// Delivery of a cluster's room messages.
//
// In a cluster every room message is numbered by Redis (an increasing
// sequence per room) and reaches each node through its subscription to
// the room, in that order; the node hands it to its local members with
// Deliver. A member that joins reads the room's number at that instant
// (with its history, in one step) and joins with JoinAfter: messages
// numbered at or below it, still on their way to this node, are skipped
// for that member, so it gets each message exactly once, in its history
// or live.

// JoinAfter puts c in room like Join; c will not be given messages
// Deliver hands over with a number at or below seq.
func (h *Hub) JoinAfter(name string, c *client.Client, seq uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.joinLocked(name, c) {
		return false
	}
	r := h.rooms[name]
	r.mu.Lock()
	defer r.mu.Unlock()
	if seq > r.delivered {
		if r.skip == nil {
			r.skip = make(map[*member]uint64)
		}
		r.skip[h.clients[c.ID()]] = seq
	}
	return true
}

// Deliver queues frame, the room message numbered seq, to every member of
// room but the client with id except and those that joined after it, and
// returns to how many. Frames must be delivered in their numbers' order.
func (h *Hub) Deliver(name string, frame []byte, except string, seq uint64) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r := h.rooms[name]
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered = max(r.delivered, seq)
	n := 0
	for m := range r.members {
		if after, ok := r.skip[m]; ok {
			if seq <= after {
				continue
			}
			delete(r.skip, m)
		}
		if m.c.ID() != except && m.c.Send(frame) == nil {
			n++
		}
	}
	return n
}

// ForgetNumbers forgets, in every room, the number of the last message
// delivered and the joins waiting for one: after Redis lost its state
// (restarted empty) numbering starts again, and what was waited for will
// never come.
func (h *Hub) ForgetNumbers() {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, r := range h.rooms {
		r.mu.Lock()
		r.delivered, r.skip = 0, nil
		r.mu.Unlock()
	}
}
