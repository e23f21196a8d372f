package hub

import (
	"errors"
	"sync"
	"sync/atomic"

	"github.com/moongate/moongate/gateway/client"
)

// Numbered room messages.
//
// A script that must know a message's number before anyone receives it
// (to store the message under it first, say) reserves the number, then
// publishes the message with it. Numbers are given by the service, one
// counter for all its rooms, each greater than the last; a room's
// numbered messages go out in the order of their numbers: a message
// waits for every number reserved before it in its room to be published
// or given up. A message published without a number to a room with
// reservations outstanding queues behind them, so the room keeps one
// order.
//
// Bounds: a room's queue holds only what was reserved and not yet sent;
// every reservation ends, published or given up, when the handler that
// made it returns (the scripting layer gives up what its handler left).

// ErrNotReserved: a message was published with a number its room does not
// hold (never reserved there, published already, or given up).
var ErrNotReserved = errors.New("the number is not reserved in this room")

// numbering holds the service's counter and, per room with reservations
// outstanding, what waits to be sent.
type numbering struct {
	mu     sync.Mutex
	last   uint64
	queues map[string][]*waiting
	active atomic.Int32 // len(queues), read without mu by plain publishes
}

// waiting is a number in a room's queue: reserved, or published (msg set)
// and waiting for the numbers before it.
type waiting struct {
	n         uint64
	published bool
	msg       Message
}

// Reserve returns the number of a message to come in room: greater than
// every number given before, and than after.
func (h *Hub) Reserve(room string, after uint64) uint64 {
	nb := &h.numbers
	nb.mu.Lock()
	defer nb.mu.Unlock()
	nb.last = max(nb.last, after) + 1
	if nb.queues == nil {
		nb.queues = make(map[string][]*waiting)
	}
	if _, ok := nb.queues[room]; !ok {
		nb.active.Add(1)
	}
	nb.queues[room] = append(nb.queues[room], &waiting{n: nb.last})
	return nb.last
}

// GiveUp gives up the number n reserved in room; the messages waiting for
// it go out. Giving up a number the room does not hold does nothing.
func (h *Hub) GiveUp(room string, n uint64) {
	nb := &h.numbers
	nb.mu.Lock()
	defer nb.mu.Unlock()
	q := nb.queues[room]
	for i, w := range q {
		if w.n == n && !w.published {
			nb.queues[room] = append(q[:i], q[i+1:]...)
			h.releaseLocked(room)
			return
		}
	}
}

// publishNumbered publishes msg: under its reserved number when it has
// one, or behind the room's reservations. It reports false, with nothing
// done, when the room has no reservation and msg no number (the caller
// sends it at once).
func (h *Hub) publishNumbered(room string, msg Message) (sent int, queued bool, err error) {
	nb := &h.numbers
	if msg.Number == 0 && nb.active.Load() == 0 {
		return 0, false, nil
	}
	nb.mu.Lock()
	defer nb.mu.Unlock()
	q, ok := nb.queues[room]
	switch {
	case msg.Number == 0 && !ok:
		return 0, false, nil
	case msg.Number == 0:
		nb.last++
		nb.queues[room] = append(q, &waiting{n: nb.last, published: true, msg: msg})
	default:
		w := find(q, msg.Number)
		if w == nil || w.published {
			return 0, true, ErrNotReserved
		}
		w.published, w.msg = true, msg
	}
	h.releaseLocked(room)
	return h.sendCount(room, msg.Except), true, nil
}

// find returns the entry of q numbered n, or nil.
func find(q []*waiting, n uint64) *waiting {
	for _, w := range q {
		if w.n == n {
			return w
		}
	}
	return nil
}

// releaseLocked sends, in order, the published messages at the head of
// room's queue, and forgets the queue once it is empty. numbers.mu must be
// held.
func (h *Hub) releaseLocked(room string) {
	nb := &h.numbers
	q := nb.queues[room]
	for len(q) > 0 && q[0].published {
		m := q[0].msg
		h.Publish(room, m.Frame, m.Data, h.Client(m.Except), m.Keep)
		q[0] = nil
		q = q[1:]
	}
	if len(q) == 0 {
		delete(nb.queues, room)
		nb.active.Add(-1)
		return
	}
	nb.queues[room] = q
}

// sendCount returns how many members a message to room is for: its
// members but except.
func (h *Hub) sendCount(room, except string) int {
	return h.Count(room) - h.memberOf(room, except)
}

// memberOf returns 1 when the client with id is a member of room, else 0.
func (h *Hub) memberOf(room, id string) int {
	if id == "" {
		return 0
	}
	if c := h.Client(id); c != nil && h.IsMember(room, c) {
		return 1
	}
	return 0
}

// publishMessage sends msg to room now, or through its queue (see
// publishNumbered), and returns to how many members.
func (h *Hub) publishMessage(room string, msg Message) (int, error) {
	n, queued, err := h.publishNumbered(room, msg)
	if queued || err != nil {
		return n, err
	}
	var except *client.Client
	if msg.Except != "" {
		except = h.Client(msg.Except)
	}
	return h.Publish(room, msg.Frame, msg.Data, except, msg.Keep), nil
}
