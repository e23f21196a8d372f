// Package hub keeps the clients of one service and the rooms they are in,
// and fans a message out to a room's members: the frame is encoded once by
// the caller and the same bytes are queued to every member.
//
// Each room has one order: what is broadcast or published to a room is
// queued to all its members (and appended to its history) under the room's
// own lock, so every member receives the room's frames in the same
// sequence, whichever goroutines sent them.
package hub

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	"github.com/moongate/moongate/gateway/client"
)

// Hub is the client registry and room membership of one service. Rooms are
// created by the first join and removed with their last member. It is safe
// for concurrent use.
type Hub struct {
	mu      sync.RWMutex
	clients map[string]*member
	rooms   map[string]*room
	seq     uint64
	history histories
	numbers numbering
}

// room is one room's members and the lock that orders what is sent to it.
// Membership changes under Hub.mu (write); sending holds Hub.mu (read) and
// then mu, so that two sends to the same room never interleave.
type room struct {
	mu      sync.Mutex
	members map[*member]uint64 // member -> join sequence number

	// In a cluster (deliver.go): the number of the last message delivered,
	// and the members that joined at a later number, until it is reached.
	delivered uint64
	skip      map[*member]uint64
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
	return &Hub{clients: make(map[string]*member), rooms: make(map[string]*room)}
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

func (h *Hub) joinLocked(name string, c *client.Client) bool {
	m := h.clients[c.ID()]
	if m == nil {
		return false
	}
	if _, in := m.rooms[name]; in {
		return false
	}
	r := h.rooms[name]
	if r == nil {
		r = &room{members: make(map[*member]uint64)}
		h.rooms[name] = r
	}
	h.seq++
	r.members[m] = h.seq
	m.rooms[name] = struct{}{}
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

func (h *Hub) leaveLocked(name string, m *member) {
	delete(m.rooms, name)
	r := h.rooms[name]
	if r == nil {
		return
	}
	delete(r.members, m)
	delete(r.skip, m)
	if len(r.members) == 0 {
		delete(h.rooms, name)
	}
}

// size returns how many members room has; h.mu must be held.
func (h *Hub) size(name string) int {
	if r := h.rooms[name]; r != nil {
		return len(r.members)
	}
	return 0
}

// Members returns the members of room in the order they joined.
func (h *Hub) Members(room string) []*client.Client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	type joined struct {
		c   *client.Client
		seq uint64
	}
	list := make([]joined, 0, h.size(room))
	var members map[*member]uint64
	if r := h.rooms[room]; r != nil {
		members = r.members
	}
	for m, seq := range members {
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
	return h.size(room)
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

// PrivatePrefix starts the name of a private room: one that works like any
// other but is not listed by Rooms (a script's per-user inbox, say).
const PrivatePrefix = "~"

// Rooms returns every room but the private ones with its member count,
// sorted by name.
func (h *Hub) Rooms() []RoomInfo {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]RoomInfo, 0, len(h.rooms))
	for name, r := range h.rooms {
		if !strings.HasPrefix(name, PrivatePrefix) {
			out = append(out, RoomInfo{Name: name, Members: len(r.members)})
		}
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
// Frames sent to one room reach all its members in the same order.
func (h *Hub) Broadcast(room string, frame []byte, except *client.Client) int {
	return h.Publish(room, frame, "", except, 0)
}

// sendLocked queues frame to every member of r but except. r.mu and h.mu
// (read) must be held. Every member gets the same bytes: nothing is
// allocated per recipient here.
func (r *room) sendLocked(frame []byte, except *client.Client) int {
	n := 0
	for m := range r.members {
		if m.c != except && m.c.Send(frame) == nil {
			n++
		}
	}
	return n
}

// Registered is a client and the rooms it is in.
type Registered struct {
	Client *client.Client
	Rooms  []string
}

// Clients returns every registered client with its rooms (sorted).
func (h *Hub) Clients() []*Registered {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := make([]*Registered, 0, len(h.clients))
	for _, m := range h.clients {
		rooms := make([]string, 0, len(m.rooms))
		for name := range m.rooms {
			rooms = append(rooms, name)
		}
		slices.Sort(rooms)
		out = append(out, &Registered{Client: m.c, Rooms: rooms})
	}
	return out
}
