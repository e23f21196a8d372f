package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/wsproto"
	"github.com/redis/go-redis/v9"
)

// HistoryTTL is how long a room's history (and its message numbers) is
// kept in Redis after the room's last publication.
const HistoryTTL = 7 * 24 * time.Hour

// Rooms are a service's rooms and clients across the nodes of a cluster
// (hub.Rooms). Each node keeps its own clients in a local hub, which
// delivers; Redis keeps who is where and numbers each room's messages:
//
//	S c:<id>        hash: node, user, a:<attribute> -> value (encode)
//	S cr:<id>       set: the rooms the client is in
//	S n:<node>      set: the ids of the node's clients
//	S r:<room>:m    hash: member id -> "<node>\n<join order>\n<user>"
//	S r:<room>:seq  the number of the room's last message sent
//	S r:<room>:h    list: the room's history, "<number>\n<entry>"
//	S r:<room>:q    sorted set, S r:<room>:p hash: numbered messages
//	                waiting (numbers.go)
//	S num           the counter numbering the service's room messages
//	S queued        set: the rooms with messages waiting
//	S rooms         hash: room -> member count
//	S joins         the join order counter
//
// and publishes each room message once, to the channel "S r:<room>",
// which every node with a member in the room subscribes to.
type Rooms struct {
	node   *Node
	path   string // the endpoint's path
	prefix string // S, the service's key prefix
	local  *hub.Hub
	gone   func(context.Context, hub.Member) // see OnGone; guarded by node.mu
}

var _ hub.Rooms = (*Rooms)(nil)

func (r *Rooms) clientKey(id string) string   { return r.prefix + "c:" + id }
func (r *Rooms) clientRooms(id string) string { return r.prefix + "cr:" + id }
func (r *Rooms) nodeClients(node string) string {
	return r.prefix + "n:" + node
}
func (r *Rooms) roomKey(room, part string) string { return r.prefix + "r:" + room + ":" + part }
func (r *Rooms) channel(room string) string       { return r.prefix + "r:" + room }
func (r *Rooms) roomsIndex() string               { return r.prefix + "rooms" }

var (
	// addClientScript: KEYS client, node clients; ARGV node, user, id.
	addClientScript = redis.NewScript(`
redis.call('HSET', KEYS[1], 'node', ARGV[1], 'user', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
return 1`)

	// removeClientScript: KEYS client, client rooms, node clients, rooms
	// index; ARGV id, service prefix. Returns the rooms it left.
	removeClientScript = redis.NewScript(`
local rooms = redis.call('SMEMBERS', KEYS[2])
for _, room in ipairs(rooms) do
  if redis.call('HDEL', ARGV[2] .. 'r:' .. room .. ':m', ARGV[1]) == 1 then
    if redis.call('HINCRBY', KEYS[4], room, -1) <= 0 then redis.call('HDEL', KEYS[4], room) end
  end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return rooms`)

	// joinScript: KEYS members, seq, history, client rooms, rooms index,
	// join counter; ARGV id, node, user, history count, room. Returns
	// {added, the room's last number, history entries}.
	joinScript = redis.NewScript(`
local added = 0
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  local order = redis.call('INCR', KEYS[6])
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '\n' .. order .. '\n' .. ARGV[3])
  redis.call('SADD', KEYS[4], ARGV[5])
  redis.call('HINCRBY', KEYS[5], ARGV[5], 1)
  added = 1
end
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local hist = {}
if tonumber(ARGV[4]) > 0 then hist = redis.call('LRANGE', KEYS[3], -tonumber(ARGV[4]), -1) end
return {added, seq, hist}`)

	// leaveScript: KEYS members, client rooms, rooms index; ARGV id, room.
	leaveScript = redis.NewScript(`
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('HINCRBY', KEYS[3], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[3], ARGV[2]) end
return 1`)
)

// Add registers c on this node and in Redis.
func (r *Rooms) Add(ctx context.Context, c *client.Client) error {
	r.local.Add(c)
	m := hub.LocalMember(c)
	err := addClientScript.Run(ctx, r.node.rdb, []string{r.clientKey(c.ID()), r.nodeClients(r.node.id)},
		r.node.id, m.User, c.ID()).Err()
	if err != nil {
		return fmt.Errorf("cluster: add client: %w", err)
	}
	return nil
}

// Remove unregisters c here and in Redis, and takes it out of its rooms.
func (r *Rooms) Remove(ctx context.Context, c *client.Client) ([]string, error) {
	left := r.local.Remove(c)
	for _, room := range left {
		r.node.subs.drop(r.channel(room))
	}
	err := removeClientScript.Run(ctx, r.node.rdb,
		[]string{r.clientKey(c.ID()), r.clientRooms(c.ID()), r.nodeClients(r.node.id), r.roomsIndex()},
		c.ID(), r.prefix).Err()
	if err != nil {
		return left, fmt.Errorf("cluster: remove client: %w", err)
	}
	return left, nil
}

// Client finds the client with id on any node.
func (r *Rooms) Client(ctx context.Context, id string) (hub.Member, bool, error) {
	if c := r.local.Client(id); c != nil {
		return hub.LocalMember(c), true, nil
	}
	all, err := r.node.rdb.HGetAll(ctx, r.clientKey(id)).Result()
	if err != nil {
		return hub.Member{}, false, fmt.Errorf("cluster: find client: %w", err)
	}
	m, ok := remoteMember(id, all)
	if !ok || m.Node == r.node.id {
		return hub.Member{}, false, nil // gone (a client of this node is in its hub)
	}
	return m, true, nil
}

// remoteMember makes a remote member from its client hash (HGETALL).
func remoteMember(id string, all map[string]string) (hub.Member, bool) {
	if all["node"] == "" {
		return hub.Member{}, false
	}
	m := hub.Member{ID: id, Node: all["node"], User: all["user"], Attrs: map[string]any{}}
	for k, s := range all {
		if name, ok := strings.CutPrefix(k, "a:"); ok {
			if v, err := decode(s); err == nil {
				m.Attrs[name] = v
			}
		}
	}
	return m, true
}

// ClientCount returns how many clients the live nodes have.
func (r *Rooms) ClientCount(ctx context.Context) (int, error) {
	nodes, err := r.node.liveNodes(ctx)
	if err != nil {
		return 0, err
	}
	pipe := r.node.rdb.Pipeline()
	counts := make([]*redis.IntCmd, len(nodes))
	for i, n := range nodes {
		counts[i] = pipe.SCard(ctx, r.nodeClients(n))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("cluster: count clients: %w", err)
	}
	total := 0
	for _, c := range counts {
		total += int(c.Val())
	}
	return total, nil
}

// Join puts c in room; see hub.Rooms.
func (r *Rooms) Join(ctx context.Context, room string, c *client.Client, history int) (bool, []string, error) {
	if err := r.node.subs.want(ctx, r.channel(room), r.deliverer(room)); err != nil {
		return false, nil, fmt.Errorf("cluster: join %q: %w", room, err)
	}
	m := hub.LocalMember(c)
	res, err := joinScript.Run(ctx, r.node.rdb, []string{
		r.roomKey(room, "m"), r.roomKey(room, "seq"), r.roomKey(room, "h"),
		r.clientRooms(c.ID()), r.roomsIndex(), r.prefix + "joins",
	}, c.ID(), r.node.id, m.User, max(history, 0), room).Slice()
	if err != nil || len(res) != 3 {
		r.node.subs.drop(r.channel(room))
		return false, nil, fmt.Errorf("cluster: join %q: %w", room, err)
	}
	seq, _ := res[1].(int64)
	joined := r.local.JoinAfter(room, c, uint64(seq))
	if !joined {
		r.node.subs.drop(r.channel(room)) // it held one already
	}
	var entries []string
	if history >= 0 {
		items, _ := res[2].([]any)
		entries = historyEntries(items)
	}
	return joined, entries, nil
}

// historyEntries strips the numbers off stored history entries.
func historyEntries(items []any) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		s, _ := it.(string)
		if _, entry, ok := strings.Cut(s, "\n"); ok {
			out = append(out, entry)
		}
	}
	return out
}

// Leave takes m out of room, on whichever node it is.
func (r *Rooms) Leave(ctx context.Context, room string, m hub.Member) (bool, error) {
	n, err := leaveScript.Run(ctx, r.node.rdb, []string{r.roomKey(room, "m"), r.clientRooms(m.ID), r.roomsIndex()}, m.ID, room).Int()
	if err != nil {
		return false, fmt.Errorf("cluster: leave %q: %w", room, err)
	}
	if m.Local != nil {
		if r.local.Leave(room, m.Local) {
			r.node.subs.drop(r.channel(room))
			return true, nil
		}
		return n == 1, nil
	}
	if n == 1 {
		err = r.node.control(ctx, m.Node, controlLeave, r.path, m.ID, "", room)
	}
	return n == 1, err
}

// Has reports whether m is in room.
func (r *Rooms) Has(ctx context.Context, room string, m hub.Member) (bool, error) {
	if m.Local != nil {
		return r.local.IsMember(room, m.Local), nil
	}
	ok, err := r.node.rdb.HExists(ctx, r.roomKey(room, "m"), m.ID).Result()
	if err != nil {
		return false, fmt.Errorf("cluster: has: %w", err)
	}
	return ok, nil
}

// Count returns how many members room has on all nodes.
func (r *Rooms) Count(ctx context.Context, room string) (int, error) {
	n, err := r.node.rdb.HLen(ctx, r.roomKey(room, "m")).Result()
	if err != nil {
		return 0, fmt.Errorf("cluster: count: %w", err)
	}
	return int(n), nil
}

// Members returns room's members on all nodes, in join order.
func (r *Rooms) Members(ctx context.Context, room string) ([]hub.Member, error) {
	all, err := r.node.rdb.HGetAll(ctx, r.roomKey(room, "m")).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: members: %w", err)
	}
	type joined struct {
		m     hub.Member
		order int64
	}
	list := make([]joined, 0, len(all))
	for id, v := range all {
		parts := strings.SplitN(v, "\n", 3)
		if len(parts) != 3 {
			continue
		}
		order, _ := strconv.ParseInt(parts[1], 10, 64)
		m := hub.Member{ID: id, Node: parts[0], User: parts[2]}
		if m.Node == r.node.id {
			c := r.local.Client(id)
			if c == nil {
				continue // left this node a moment ago
			}
			m = hub.LocalMember(c)
		}
		list = append(list, joined{m, order})
	}
	// The remote members' attributes, all in one round trip.
	pipe := r.node.rdb.Pipeline()
	attrs := make([]*redis.MapStringStringCmd, len(list))
	for i, j := range list {
		if j.m.Local == nil {
			attrs[i] = pipe.HGetAll(ctx, r.clientKey(j.m.ID))
		}
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("cluster: members' attributes: %w", err)
		}
	}
	for i, cmd := range attrs {
		if cmd != nil {
			if m, ok := remoteMember(list[i].m.ID, cmd.Val()); ok {
				list[i].m = m
			}
		}
	}
	slices.SortFunc(list, func(a, b joined) int { return cmp.Compare(a.order, b.order) })
	out := make([]hub.Member, len(list))
	for i, j := range list {
		out[i] = j.m
	}
	return out, nil
}

// List returns the rooms with members on any node, but the private ones.
func (r *Rooms) List(ctx context.Context) ([]hub.RoomInfo, error) {
	all, err := r.node.rdb.HGetAll(ctx, r.roomsIndex()).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: list rooms: %w", err)
	}
	out := make([]hub.RoomInfo, 0, len(all))
	for name, v := range all {
		n, _ := strconv.Atoi(v)
		if n > 0 && !strings.HasPrefix(name, hub.PrivatePrefix) {
			out = append(out, hub.RoomInfo{Name: name, Members: n})
		}
	}
	slices.SortFunc(out, func(a, b hub.RoomInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// RoomsOf returns the rooms m is in.
func (r *Rooms) RoomsOf(ctx context.Context, m hub.Member) ([]string, error) {
	if m.Local != nil {
		return r.local.RoomsOf(m.Local), nil
	}
	rooms, err := r.node.rdb.SMembers(ctx, r.clientRooms(m.ID)).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: rooms of a client: %w", err)
	}
	slices.Sort(rooms)
	return rooms, nil
}

// Publish numbers msg in room's order and publishes it once; every node
// delivers it to its members, this one included, as it comes back. While
// Redis cannot be reached (or the node's outbox still holds publications
// from such a time), msg is delivered to this node's members at once and
// kept in the outbox (see outage.go); the count is then of those members.
func (r *Rooms) Publish(ctx context.Context, room string, msg hub.Message) (int, error) {
	if r.node.outbox.len() == 0 {
		n, err := r.publishNow(ctx, room, msg)
		if !unreachable(err) {
			return n, err
		}
	}
	n := r.deliverHere(room, msg)
	r.node.outbox.add(pending{r: r, room: room, msg: msg})
	return n, nil
}

// publishNow runs the publish script for msg and returns how many
// members it is for.
func (r *Rooms) publishNow(ctx context.Context, room string, msg hub.Message) (int, error) {
	res, err := r.publishIn(ctx, r.node.rdb, room, msg, false).Slice()
	if err != nil || len(res) != 2 {
		return 0, fmt.Errorf("cluster: publish to %q: %w", room, err)
	}
	r.node.published.Inc()
	n, _ := res[1].(int64)
	return int(n), nil
}

// deliveredMark follows the origin of a publication its node delivered to
// its own members already (from the outbox).
const deliveredMark = "*"

// deliverer returns the handler of room's channel: it decodes a
// publication, encodes its frame once and queues it to the local members.
func (r *Rooms) deliverer(room string) func(string) {
	return func(payload string) {
		parts := strings.SplitN(payload, "\n", 5)
		if len(parts) != 5 {
			return
		}
		if parts[0] == r.node.id+deliveredMark {
			return // this node's members had it during an outage
		}
		seq, err1 := strconv.ParseUint(parts[1], 10, 64)
		op, err2 := strconv.Atoi(parts[3])
		if err1 != nil || err2 != nil {
			return
		}
		r.local.Deliver(room, wsproto.FrameString(ws.OpCode(op), parts[4]), parts[2], seq)
	}
}

// History returns room's last n history entries.
func (r *Rooms) History(ctx context.Context, room string, n int) ([]string, error) {
	start := int64(0)
	if n >= 0 {
		if n == 0 {
			return []string{}, nil
		}
		start = -int64(n)
	}
	items, err := r.node.rdb.LRange(ctx, r.roomKey(room, "h"), start, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: history: %w", err)
	}
	anys := make([]any, len(items))
	for i, it := range items {
		anys[i] = it
	}
	return historyEntries(anys), nil
}

// Send queues data to m, through its node when it is remote.
func (r *Rooms) Send(ctx context.Context, m hub.Member, op ws.OpCode, data string) error {
	if m.Local != nil {
		return m.Local.Send(wsproto.FrameString(op, data))
	}
	return r.node.control(ctx, m.Node, controlSend, r.path, m.ID, strconv.Itoa(int(op)), data)
}

// Close closes m's connection, through its node when it is remote.
func (r *Rooms) Close(ctx context.Context, m hub.Member, code ws.StatusCode, reason string) error {
	if m.Local != nil {
		m.Local.Close(code, reason)
		return nil
	}
	return r.node.control(ctx, m.Node, controlClose, r.path, m.ID, strconv.Itoa(int(code)), reason)
}

// Attr returns m's attribute key.
func (r *Rooms) Attr(ctx context.Context, m hub.Member, key string) (any, bool, error) {
	if m.Local != nil {
		v, ok := m.Local.Attr(key)
		return v, ok, nil
	}
	if m.Attrs != nil {
		v, ok := m.Attrs[key]
		return v, ok, nil
	}
	s, err := r.node.rdb.HGet(ctx, r.clientKey(m.ID), "a:"+key).Result()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cluster: client attribute: %w", err)
	}
	v, err := decode(s)
	return v, err == nil, err
}

// Attrs returns all of m's attributes.
func (r *Rooms) Attrs(ctx context.Context, m hub.Member) (map[string]any, error) {
	if m.Local != nil {
		return m.Local.Attrs(), nil
	}
	if m.Attrs != nil {
		return maps.Clone(m.Attrs), nil
	}
	all, err := r.node.rdb.HGetAll(ctx, r.clientKey(m.ID)).Result()
	if err != nil {
		return nil, fmt.Errorf("cluster: client attributes: %w", err)
	}
	out := make(map[string]any)
	for k, s := range all {
		if name, ok := strings.CutPrefix(k, "a:"); ok {
			if v, err := decode(s); err == nil {
				out[name] = v
			}
		}
	}
	return out, nil
}

// SetAttr records c's attribute in Redis for the other nodes.
func (r *Rooms) SetAttr(ctx context.Context, c *client.Client, key string, value any) error {
	var err error
	if value == nil {
		err = r.node.rdb.HDel(ctx, r.clientKey(c.ID()), "a:"+key).Err()
	} else {
		var enc string
		if enc, err = encode(value); err == nil {
			err = r.node.rdb.HSet(ctx, r.clientKey(c.ID()), "a:"+key, enc).Err()
		}
	}
	if err != nil {
		return fmt.Errorf("cluster: set client attribute: %w", err)
	}
	return nil
}

// onControl handles a message from another node for one of this
// service's clients.
func (r *Rooms) onControl(kind byte, id, arg, data string) {
	c := r.local.Client(id)
	if c == nil {
		return
	}
	switch kind {
	case controlSend:
		op, _ := strconv.Atoi(arg)
		c.Send(wsproto.FrameString(ws.OpCode(op), data))
	case controlClose:
		code, _ := strconv.Atoi(arg)
		c.Close(ws.StatusCode(code), data)
	case controlLeave:
		if r.local.Leave(data, c) {
			r.node.subs.drop(r.channel(data))
		}
	}
}

// Stop stops routing messages from other nodes to this service's clients
// (its service has stopped).
func (r *Rooms) Stop() { r.node.unregister(r) }
