// Package hub keeps the clients of one service and the rooms they are in,
// and fans a message out to a room's members: the frame is encoded once by
// the caller and the same bytes are queued to every member.
package hub

import (
	"cmp"
	"slices"
	"sync"

	"github.com/moongate/moongate/gateway/client"
)

// Hub is the client registry and room membership of one service. Rooms are
// created by the first join and removed with their last member. It is safe
// for concurrent use.
type Hub struct {
	mu      sync.RWMutex
	clients map[string]*member
	rooms   map[string]map[*member]uint64 // member -> join sequence number
	seq     uint64
	history histories
}

// member is a client and the rooms it is in.
type member struct {
	c     *client.Client
	rooms map[string]struct{}
}

// RoomInfo names a room and how many members it has.
type RoomInfo struct {
	Name    string
	Members int
}

// New returns an empty hub.
func New() *Hub {
	return &Hub{clients: make(map[string]*member), rooms: make(map[string]map[*member]uint64)}
}

// Add registers c so that it can be found by id and join rooms.
func (h *Hub) Add(c *client.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients[c.ID()] = &member{c: c, rooms: make(map[string]struct{})}
}

// Remove unregisters c, takes it out of every room, and returns the rooms it
// was in, sorted.
func (h *Hub) Remove(c *client.Client) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.clients[c.ID()]
	if m == nil {
		return nil
	}
	delete(h.clients, c.ID())
	left := make([]string, 0, len(m.rooms))
	for name := range m.rooms {
		h.leaveLocked(name, m)
		left = append(left, name)
	}
	slices.Sort(left)
	return left
}

// Client returns the registered client with id, or nil.
func (h *Hub) Client(id string) *client.Client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if m := h.clients[id]; m != nil {
		return m.c
	}
	return nil
}

// ClientCount returns how many clients are registered.
func (h *Hub) ClientCount() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.clients)
}

// Join puts c in room and reports whether it was not there already.
// A client that is not registered cannot join.
func (h *Hub) Join(room string, c *client.Client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.joinLocked(room, c)
}

func (h *Hub) joinLocked(room string, c *client.Client) bool {
	m := h.clients[c.ID()]
	if m == nil {
		return false
	}
	if _, in := m.rooms[room]; in {
		return false
	}
	members := h.rooms[room]
	if members == nil {
		members = make(map[*member]uint64)
		h.rooms[room] = members
	}
	h.seq++
	members[m] = h.seq
	m.rooms[room] = struct{}{}
	return true
}

// Leave takes c out of room and reports whether it was there.
func (h *Hub) Leave(room string, c *client.Client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.clients[c.ID()]
	if m == nil {
		return false
	}
	if _, in := m.rooms[room]; !in {
		return false
	}
	h.leaveLocked(room, m)
	return true
}

func (h *Hub) leaveLocked(room string, m *member) {
	delete(m.rooms, room)
	members := h.rooms[room]
	delete(members, m)
	if len(members) == 0 {
		delete(h.rooms, room)
	}
}

// Members returns the members of room in the order they joined.
func (h *Hub) Members(room string) []*client.Client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	type joined struct {
		c   *client.Client
		seq uint64
	}
	list := make([]joined, 0, len(h.rooms[room]))
	for m, seq := range h.rooms[room] {
		list = append(list, joined{m.c, seq})
	}
	slices.SortFunc(list, func(a, b joined) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]*client.Client, len(list))
	for i, j := range list {
		out[i] = j.c
	}
	return out
}

// Count returns how many members room has.
func (h *Hub) Count(room string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms[room])
}

// IsMember reports whether c is in room.
func (h *Hub) IsMember(room string, c *client.Client) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	m := h.clients[c.ID()]
	if m == nil {
		return false
	}
	_, in := m.rooms[room]
	return in
}

// Rooms returns every room with its member count, sorted by name.
func (h *Hub) Rooms() []RoomInfo {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]RoomInfo, 0, len(h.rooms))
	for name, members := range h.rooms {
		out = append(out, RoomInfo{Name: name, Members: len(members)})
	}
	slices.SortFunc(out, func(a, b RoomInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// RoomsOf returns the rooms c is in, sorted.
func (h *Hub) RoomsOf(c *client.Client) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	m := h.clients[c.ID()]
	if m == nil {
		return nil
	}
	out := make([]string, 0, len(m.rooms))
	for name := range m.rooms {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Broadcast queues frame to every member of room except the client except
// (which may be nil), and returns to how many it was queued. Each member's
// own send-queue policy applies; a slow member never delays the others.
func (h *Hub) Broadcast(room string, frame []byte, except *client.Client) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.broadcastLocked(room, frame, except)
}

func (h *Hub) broadcastLocked(room string, frame []byte, except *client.Client) int {
	n := 0
	for m := range h.rooms[room] {
		if m.c != except && m.c.Send(frame) == nil {
			n++
		}
	}
	return n
}
