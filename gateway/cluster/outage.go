package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/wsproto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Redis outages.
//
// While Redis cannot be reached a node goes on serving its own clients. A
// room message is delivered at once to the room's members on this node
// and kept in the node's outbox, to be published to the others once
// Redis answers again, in order, marked as delivered here already (so no
// member of this node gets it twice). The outbox is bounded
// (MaxOutbox publications, MaxOutboxBytes of data); past either bound a
// publication is not kept (its local members had it), and is counted in
// moongate_cluster_dropped_publications_total. While the outbox is not
// empty, new publications queue behind it, so the other nodes get this
// node's messages in the order it sent them.
//
// Once Redis answers again the node also registers anew what it holds
// (resync): its clients, their attributes and rooms, and forgets in Redis
// the clients that left it meanwhile; go-redis resubscribes its channels.

// Bounds of a node's outbox.
const (
	MaxOutbox      = 10_000
	MaxOutboxBytes = 16 << 20
)

// pending is a room message waiting in the outbox.
type pending struct {
	r    *Rooms
	room string
	msg  hub.Message
}

// outbox holds the publications made while Redis was unreachable.
type outbox struct {
	mu      sync.Mutex
	items   []pending
	bytes   int
	dropped prometheus.Counter
}

// add keeps p, or counts it dropped when the outbox is full.
func (o *outbox) add(p pending) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.items) >= MaxOutbox || o.bytes+len(p.msg.Data) > MaxOutboxBytes {
		o.dropped.Inc()
		return
	}
	o.items = append(o.items, p)
	o.bytes += len(p.msg.Data)
}

// len returns how many publications wait.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items)
}

// flushBatch is how many waiting publications one round trip carries.
const flushBatch = 256

// flush publishes what waits, in order, flushBatch at a time in one
// pipeline (one connection: Redis runs them in order), stopping at the
// first failure; what failed stays, first in line.
func (o *outbox) flush(ctx context.Context, rdb *redis.Client) error {
	if o.len() == 0 {
		return nil
	}
	if err := publishScript.Load(ctx, rdb).Err(); err != nil {
		return err
	}
	for {
		o.mu.Lock()
		batch := o.items[:min(len(o.items), flushBatch)]
		o.mu.Unlock()
		if len(batch) == 0 {
			return nil
		}
		pipe := rdb.Pipeline()
		for _, p := range batch {
			p.r.publishIn(ctx, pipe, p.room, p.msg, true)
		}
		cmds, _ := pipe.Exec(ctx)
		done := 0
		for _, cmd := range cmds {
			if cmd.Err() != nil {
				break
			}
			done++
		}
		o.mu.Lock()
		for _, p := range o.items[:done] {
			o.bytes -= len(p.msg.Data)
			p.r.node.published.Inc()
		}
		clear(o.items[:done])
		o.items = o.items[done:]
		o.mu.Unlock()
		if done < len(batch) {
			return fmt.Errorf("cluster: outbox flush: %w", cmds[done].Err())
		}
	}
}

// unreachable reports whether err means Redis could not be reached (as
// opposed to an error Redis answered with).
func unreachable(err error) bool {
	var reply redis.Error
	return err != nil && !errors.As(err, &reply)
}

// deliverHere queues msg to room's members on this node at once.
func (r *Rooms) deliverHere(room string, msg hub.Message) int {
	var except = r.local.Client(msg.Except)
	return r.local.Broadcast(room, wsproto.FrameString(msg.Op, msg.Data), except)
}

// resync registers anew in Redis what this node holds for the service:
// every local client with its attributes and rooms; the clients Redis
// still lists for this node but that are gone are removed, with the keys
// bound to them.
func (r *Rooms) resync(ctx context.Context) error {
	r.local.ForgetNumbers() // an empty Redis numbers from 1 again
	ids, err := r.node.rdb.SMembers(ctx, r.nodeClients(r.node.id)).Result()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if r.local.Client(id) == nil {
			r.reapClient(ctx, r.node.id, id, nil)
		}
	}
	for _, c := range r.local.Clients() {
		if err := r.register(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// register records c, its attributes and its rooms in Redis, leaving the
// rooms Redis lists for it that it is no longer in.
func (r *Rooms) register(ctx context.Context, c *hub.Registered) error {
	m := hub.LocalMember(c.Client)
	if err := addClientScript.Run(ctx, r.node.rdb, []string{r.clientKey(m.ID), r.nodeClients(r.node.id)}, r.node.id, m.User, m.ID).Err(); err != nil {
		return err
	}
	for k, v := range c.Client.Attrs() {
		if err := r.SetAttr(ctx, c.Client, k, v); err != nil {
			return err
		}
	}
	in := make(map[string]bool, len(c.Rooms))
	for _, room := range c.Rooms {
		in[room] = true
		err := joinScript.Run(ctx, r.node.rdb, []string{
			r.roomKey(room, "m"), r.roomKey(room, "seq"), r.roomKey(room, "h"),
			r.clientRooms(m.ID), r.roomsIndex(), r.prefix + "joins",
		}, m.ID, r.node.id, m.User, 0, room).Err()
		if err != nil {
			return err
		}
	}
	listed, err := r.node.rdb.SMembers(ctx, r.clientRooms(m.ID)).Result()
	if err != nil {
		return err
	}
	for _, room := range listed {
		if !in[room] {
			leaveScript.Run(ctx, r.node.rdb, []string{r.roomKey(room, "m"), r.clientRooms(m.ID), r.roomsIndex()}, m.ID, room)
		}
	}
	return nil
}
