package cluster

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/moongate/moongate/gateway/hub"
	"github.com/redis/go-redis/v9"
)

// Room message numbers across the nodes (see hub.Rooms.Reserve).
//
// One counter per service (S num) numbers every room message, published
// or reserved, on every node. A room with reservations outstanding has a
// queue in Redis: a sorted set of the numbers waiting (S r:<room>:q) and a
// hash from each to what it holds (S r:<room>:p): "R<deadline ms>" while
// reserved, "M<origin>\n<except>\n<op>\n<keep>\n<data>" once published.
// Every script that changes a queue then releases its head, in order:
// published messages go out (history, PUBLISH, the room's number), given
// up or expired reservations are dropped, and it stops at the first
// reservation still held. A reservation lives at most ReservationTTL (on
// Redis's clock): a node that died holding one delays its room by that
// much at most. The rooms with a queue are listed in S queued; each node
// releases them after each heartbeat, so a queue whose head expired moves
// on without further traffic.

// ReservationTTL bounds how long a reserved number holds its room's
// messages back.
const ReservationTTL = 10 * time.Second

// numberLua is the part the numbering scripts share. KEYS: counter, queue,
// pending, the room's number, members, history, queued rooms; ARGV[1]
// channel, ARGV[2] room, ARGV[3] history ttl ms.
const numberLua = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function send(n, origin, except, op, keep, data)
  keep = tonumber(keep)
  if keep > 0 then
    redis.call('RPUSH', KEYS[6], n .. '\n' .. data)
    redis.call('LTRIM', KEYS[6], -keep, -1)
    redis.call('PEXPIRE', KEYS[6], ARGV[3])
  end
  redis.call('SET', KEYS[4], n, 'PX', ARGV[3])
  redis.call('PUBLISH', ARGV[1], origin .. '\n' .. n .. '\n' .. except .. '\n' .. op .. '\n' .. data)
end
local function release()
  local now
  while true do
    local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
    if not head then
      redis.call('SREM', KEYS[7], ARGV[2])
      return 0
    end
    local v = redis.call('HGET', KEYS[3], head)
    if v and string.sub(v, 1, 1) == 'R' then
      now = now or now_ms()
      local left = tonumber(string.sub(v, 2)) - now
      if left > 0 then return left end
    elseif v then
      local f, pos = {}, 2
      for i = 1, 4 do
        local e = string.find(v, '\n', pos, true)
        f[i] = string.sub(v, pos, e - 1)
        pos = e + 1
      end
      send(head, f[1], f[2], f[3], f[4], string.sub(v, pos))
    end
    redis.call('ZREM', KEYS[2], head)
    redis.call('HDEL', KEYS[3], head)
  end
end
local function queue(n, v)
  redis.call('ZADD', KEYS[2], n, n)
  redis.call('HSET', KEYS[3], n, v)
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
  redis.call('SADD', KEYS[7], ARGV[2])
end
local function audience(except)
  local n = redis.call('HLEN', KEYS[5])
  if except ~= '' and redis.call('HEXISTS', KEYS[5], except) == 1 then n = n - 1 end
  return n
end
`

var (
	// publishScript: ARGV[4..] origin, except id, opcode, data, keep,
	// number (0: none), lenient (1: an unreserved number is published as
	// if it had none). Returns {its number, how many members it is for}.
	publishScript = redis.NewScript(numberLua + `
local n = ARGV[9]
local payload = 'M' .. ARGV[4] .. '\n' .. ARGV[5] .. '\n' .. ARGV[6] .. '\n' .. ARGV[8] .. '\n' .. ARGV[7]
local held = n ~= '0' and redis.call('HGET', KEYS[3], n)
if n ~= '0' and not (held and string.sub(held, 1, 1) == 'R') then
  if ARGV[10] ~= '1' then return redis.error_reply('number ' .. n .. ' is not reserved in this room') end
  n = '0'
end
if n ~= '0' then
  redis.call('HSET', KEYS[3], n, payload)
else
  n = string.format('%d', redis.call('INCR', KEYS[1]))
  if redis.call('EXISTS', KEYS[2]) == 0 then
    send(n, ARGV[4], ARGV[5], ARGV[6], ARGV[8], ARGV[7])
    return {tonumber(n), audience(ARGV[5])}
  end
  queue(n, payload)
end
release()
return {tonumber(n), audience(ARGV[5])}`)

	// reserveScript: ARGV[4..] after, reservation ttl ms. Returns the number.
	reserveScript = redis.NewScript(numberLua + `
if tonumber(ARGV[4]) > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], ARGV[4])
end
local n = string.format('%d', redis.call('INCR', KEYS[1]))
queue(n, 'R' .. string.format('%d', now_ms() + tonumber(ARGV[5])))
return tonumber(n)`)

	// giveUpScript: ARGV[4] the number.
	giveUpScript = redis.NewScript(numberLua + `
local v = redis.call('HGET', KEYS[3], ARGV[4])
if v and string.sub(v, 1, 1) == 'R' then
  redis.call('ZREM', KEYS[2], ARGV[4])
  redis.call('HDEL', KEYS[3], ARGV[4])
  release()
end
return 0`)

	// releaseQueueScript releases what the room's queue can, and returns how
	// many ms its head may still hold it back.
	releaseQueueScript = redis.NewScript(numberLua + `return release()`)
)

// numberKeys are the keys the numbering scripts of room use.
func (r *Rooms) numberKeys(room string) []string {
	return []string{r.prefix + "num", r.roomKey(room, "q"), r.roomKey(room, "p"), r.roomKey(room, "seq"),
		r.roomKey(room, "m"), r.roomKey(room, "h"), r.queuedRooms()}
}

func (r *Rooms) queuedRooms() string { return r.prefix + "queued" }

// numberArgs are the first arguments of the numbering scripts of room.
func (r *Rooms) numberArgs(room string, more ...any) []any {
	return append([]any{r.channel(room), room, HistoryTTL.Milliseconds()}, more...)
}

// Reserve returns the number of a message to come in room; see hub.Rooms.
func (r *Rooms) Reserve(ctx context.Context, room string, after uint64) (uint64, error) {
	n, err := reserveScript.Run(ctx, r.node.rdb, r.numberKeys(room),
		r.numberArgs(room, after, ReservationTTL.Milliseconds())...).Int64()
	if err != nil {
		return 0, fmt.Errorf("cluster: reserve a number in %q: %w", room, err)
	}
	return uint64(n), nil
}

// GiveUp gives up the number n reserved in room; see hub.Rooms.
func (r *Rooms) GiveUp(ctx context.Context, room string, n uint64) error {
	if err := giveUpScript.Run(ctx, r.node.rdb, r.numberKeys(room), r.numberArgs(room, n)...).Err(); err != nil {
		return fmt.Errorf("cluster: give up number %d in %q: %w", n, room, err)
	}
	return nil
}

// publishIn runs the publish script for msg through s (the client, or a
// pipeline). deliveredHere marks a publication from the outbox, which this
// node's members had already; its number, if it had one, may have been
// given up meanwhile: it then gets a new one.
func (r *Rooms) publishIn(ctx context.Context, s redis.Scripter, room string, msg hub.Message, deliveredHere bool) *redis.Cmd {
	origin, lenient := r.node.id, "0"
	if deliveredHere {
		origin, lenient = origin+deliveredMark, "1"
	}
	keep := min(max(msg.Keep, 0), hub.MaxHistory)
	args := r.numberArgs(room, origin, msg.Except, int(msg.Op), msg.Data, keep, strconv.FormatUint(msg.Number, 10), lenient)
	if deliveredHere { // in a pipeline: the script is loaded (flush)
		return publishScript.EvalSha(ctx, s, r.numberKeys(room), args...)
	}
	return publishScript.Run(ctx, s, r.numberKeys(room), args...)
}

// releaseQueues moves on the queues of this service's rooms whose head
// reservation may have expired (its node died holding it).
func (r *Rooms) releaseQueues(ctx context.Context) error {
	rooms, err := r.node.rdb.SMembers(ctx, r.queuedRooms()).Result()
	if err != nil {
		return fmt.Errorf("cluster: queued rooms: %w", err)
	}
	for _, room := range rooms {
		if err := releaseQueueScript.Run(ctx, r.node.rdb, r.numberKeys(room), r.numberArgs(room)...).Err(); err != nil {
			return fmt.Errorf("cluster: release %q: %w", room, err)
		}
	}
	return nil
}
