package hub

import (
	"context"
	"errors"
	"fmt"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/wsproto"
)

// Member is a client as a service's rooms know it: one connected to this
// node (Local is set), or, in a cluster, one connected to another node.
type Member struct {
	ID    string
	Node  string         // the node it is connected to; "" for a local client
	User  string         // its token's sub, "" for a guest
	Local *client.Client // nil for a client on another node
	// Attrs are a remote client's attributes as they were when it was
	// looked up (nil for a local client, whose own are read).
	Attrs map[string]any
}

// LocalMember returns c as a Member.
func LocalMember(c *client.Client) Member {
	sub, _ := c.Request().Claims["sub"].(string)
	return Member{ID: c.ID(), User: sub, Local: c}
}

// Message is a room message: what a script broadcasts or publishes.
type Message struct {
	Op     ws.OpCode
	Data   string
	Frame  []byte // Data encoded as one frame, once, by the caller
	Except string // the id of a client not to send it to; "" for none
	Keep   int    // > 0: keep it in the room's history, with the last Keep entries
	Number uint64 // > 0: the number reserved for it (Rooms.Reserve); 0: none
}

// ErrRemote: the operation needs a client connected to this node.
var ErrRemote = errors.New("the client is connected to another node")

// Rooms is the seam between a service's scripts and its rooms and
// clients: the in-process Hub (Local), or a cluster's rooms spanning its
// nodes (gateway/cluster). Every method takes a context (a cluster waits
// on the network) and may fail for that reason.
type Rooms interface {
	// Add registers c, a client connecting to this node.
	Add(ctx context.Context, c *client.Client) error
	// Remove unregisters c, takes it out of every room, and returns the
	// rooms it was in, sorted.
	Remove(ctx context.Context, c *client.Client) ([]string, error)
	// Client finds a connected client by id, on any node.
	Client(ctx context.Context, id string) (Member, bool, error)
	// ClientCount returns how many clients are connected (on all nodes).
	ClientCount(ctx context.Context) (int, error)
	// Join puts c in room and reports whether it was not there; with
	// history >= 0, it also returns the room's last history entries (at
	// most history), taken at the same instant: each entry published to
	// the room reaches c exactly once, in them or live.
	Join(ctx context.Context, room string, c *client.Client, history int) (bool, []string, error)
	// Leave takes m out of room and reports whether it was there.
	Leave(ctx context.Context, room string, m Member) (bool, error)
	// Has reports whether m is in room.
	Has(ctx context.Context, room string, m Member) (bool, error)
	// Count returns how many members room has.
	Count(ctx context.Context, room string) (int, error)
	// Members returns room's members in the order they joined.
	Members(ctx context.Context, room string) ([]Member, error)
	// List returns the rooms but the private ones, with their member
	// counts, sorted by name.
	List(ctx context.Context) ([]RoomInfo, error)
	// RoomsOf returns the rooms m is in, sorted.
	RoomsOf(ctx context.Context, m Member) ([]string, error)
	// Publish sends msg to every member of room (on every node), in the
	// room's one order, and returns to how many members it was sent.
	Publish(ctx context.Context, room string, msg Message) (int, error)
	// Reserve returns the number of a message to come in room: greater
	// than every number the service gave before (on every node), and than
	// after. The room's messages go out in the order of their numbers: one
	// published with a number (Message.Number) waits until every number
	// reserved before it in the room is published or given up.
	Reserve(ctx context.Context, room string, after uint64) (uint64, error)
	// GiveUp gives up the number n reserved in room: the messages waiting
	// for it go out.
	GiveUp(ctx context.Context, room string, n uint64) error
	// History returns room's last n history entries (all when n < 0).
	History(ctx context.Context, room string, n int) ([]string, error)
	// Send queues data to m (a client on another node; a local one is
	// sent to directly).
	Send(ctx context.Context, m Member, op ws.OpCode, data string) error
	// Close closes m's connection with code and reason.
	Close(ctx context.Context, m Member, code ws.StatusCode, reason string) error
	// Attr returns m's attribute key.
	Attr(ctx context.Context, m Member, key string) (any, bool, error)
	// Attrs returns all of m's attributes.
	Attrs(ctx context.Context, m Member) (map[string]any, error)
	// SetAttr records that c's attribute key is now value (c holds it
	// already), so that other nodes can read it; nil deletes it.
	SetAttr(ctx context.Context, c *client.Client, key string, value any) error
}

// Local returns h as Rooms: every client is on this node, and no method
// waits or fails for want of a network.
func (h *Hub) Local() Rooms { return local{h} }

type local struct{ h *Hub }

func (l local) Add(_ context.Context, c *client.Client) error { l.h.Add(c); return nil }

func (l local) Remove(_ context.Context, c *client.Client) ([]string, error) {
	return l.h.Remove(c), nil
}

func (l local) Client(_ context.Context, id string) (Member, bool, error) {
	if c := l.h.Client(id); c != nil {
		return LocalMember(c), true, nil
	}
	return Member{}, false, nil
}

func (l local) ClientCount(context.Context) (int, error) { return l.h.ClientCount(), nil }

func (l local) Join(_ context.Context, room string, c *client.Client, history int) (bool, []string, error) {
	if history < 0 {
		return l.h.Join(room, c), nil, nil
	}
	joined, entries := l.h.JoinWithHistory(room, c, history)
	return joined, entries, nil
}

func (l local) Leave(_ context.Context, room string, m Member) (bool, error) {
	if m.Local == nil {
		return false, nil
	}
	return l.h.Leave(room, m.Local), nil
}

func (l local) Has(_ context.Context, room string, m Member) (bool, error) {
	return m.Local != nil && l.h.IsMember(room, m.Local), nil
}

func (l local) Count(_ context.Context, room string) (int, error) { return l.h.Count(room), nil }

func (l local) Members(_ context.Context, room string) ([]Member, error) {
	cs := l.h.Members(room)
	out := make([]Member, len(cs))
	for i, c := range cs {
		out[i] = LocalMember(c)
	}
	return out, nil
}

func (l local) List(context.Context) ([]RoomInfo, error) { return l.h.Rooms(), nil }

func (l local) RoomsOf(_ context.Context, m Member) ([]string, error) {
	if m.Local == nil {
		return nil, nil
	}
	return l.h.RoomsOf(m.Local), nil
}

func (l local) Publish(_ context.Context, room string, msg Message) (int, error) {
	return l.h.publishMessage(room, msg)
}

func (l local) Reserve(_ context.Context, room string, after uint64) (uint64, error) {
	return l.h.Reserve(room, after), nil
}

func (l local) GiveUp(_ context.Context, room string, n uint64) error {
	l.h.GiveUp(room, n)
	return nil
}

func (l local) History(_ context.Context, room string, n int) ([]string, error) {
	return l.h.History(room, n), nil
}

func (l local) Send(_ context.Context, m Member, op ws.OpCode, data string) error {
	if m.Local == nil {
		return ErrRemote
	}
	return m.Local.Send(wsproto.FrameString(op, data))
}

func (l local) Close(_ context.Context, m Member, code ws.StatusCode, reason string) error {
	if m.Local == nil {
		return ErrRemote
	}
	m.Local.Close(code, reason)
	return nil
}

func (l local) Attr(_ context.Context, m Member, key string) (any, bool, error) {
	if m.Local == nil {
		return nil, false, fmt.Errorf("attribute %q: %w", key, ErrRemote)
	}
	v, ok := m.Local.Attr(key)
	return v, ok, nil
}

func (l local) Attrs(_ context.Context, m Member) (map[string]any, error) {
	if m.Local == nil {
		return nil, ErrRemote
	}
	return m.Local.Attrs(), nil
}

func (l local) SetAttr(context.Context, *client.Client, string, any) error { return nil }
