package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moongate/moongate/gateway/store"
	"github.com/redis/go-redis/v9"
)

// Store is a service's store shared by every node of a cluster, kept in
// Redis with the guarantees of store.KV: each operation is one command or
// one script, so it is atomic across nodes; expiries are Redis's own.
//
// Keys, under the service's prefix P ("mg:<endpoint path>:"):
//
//	P k:<key>        the value: a string (see encode), a list or a hash
//	P own            hash: key -> the owner (client id) it is bound to
//	P owned:<owner>  set: the keys given to owner, released with it
//
// A key has the expiry the script gave it; the owner records last until
// their owner is released (a client closes, or its node is declared dead).
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	held   heldKeys // the keys bound to clients this store set (held.go)
}

var _ store.KV = (*Store)(nil)

// NewStore returns the store of the service whose keys start with prefix.
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix}
}

func (s *Store) key(k string) string         { return s.prefix + "k:" + k }
func (s *Store) owners() string              { return s.prefix + "own" }
func (s *Store) ownedBy(owner string) string { return s.prefix + "owned:" + owner }

// The scripts. Each runs atomically in Redis.
var (
	getScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'string' then return {'v', redis.call('GET', KEYS[1])} end
if t == 'list' then return {'l', redis.call('LRANGE', KEYS[1], 0, -1)} end
if t == 'hash' then return {'h', redis.call('HGETALL', KEYS[1])} end
return false`)

	// setScript: KEYS key, owners, owned-by-owner; ARGV value, ttl ms,
	// owner, the key's name, only-if-absent.
	setScript = redis.NewScript(`
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[4], ARGV[3])
  redis.call('SADD', KEYS[3], ARGV[4])
else
  redis.call('HDEL', KEYS[2], ARGV[4])
end
return 1`)

	// setIfScript: KEYS key; ARGV value, old, ttl ms.
	setIfScript = redis.NewScript(`
if redis.call('TYPE', KEYS[1]).ok ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
end
return 1`)

	// incrScript: KEYS key; ARGV by, ttl ms (applied when the key is made).
	incrScript = redis.NewScript(`
local existed = redis.call('EXISTS', KEYS[1])
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return n`)

	// deleteScript: KEYS key, owners; ARGV the key's name, the value it
	// must hold ("" with ARGV[3] = '0': any).
	deleteScript = redis.NewScript(`
if ARGV[3] == '1' then
  if redis.call('TYPE', KEYS[1]).ok ~= 'string' or redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
end
local n = redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return n`)

	// expireScript: KEYS key; ARGV ttl ms (0: never expires).
	expireScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) else redis.call('PERSIST', KEYS[1]) end
return 1`)

	// pushScript: KEYS key; ARGV value, keep.
	pushScript = redis.NewScript(`
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
return redis.call('LLEN', KEYS[1])`)

	// rangeScript: KEYS key; ARGV from, to (1-based, negative from the end).
	rangeScript = redis.NewScript(`
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'none' then return {} end
if t ~= 'list' then return redis.error_reply('WRONGTYPE the key holds another kind of value') end
local n = redis.call('LLEN', KEYS[1])
local from, to = tonumber(ARGV[1]), tonumber(ARGV[2])
if from < 0 then from = from + n + 1 end
if to < 0 then to = to + n + 1 end
if from < 1 then from = 1 end
if to > n then to = n end
if from > to then return {} end
return redis.call('LRANGE', KEYS[1], from - 1, to - 1)`)

	// releaseScript: KEYS owners, owned-by-owner; ARGV owner, the prefix
	// of value keys. It deletes keys it was not given in KEYS, which a
	// single Redis server allows (a Redis Cluster would not).
	releaseScript = redis.NewScript(`
local n = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('HGET', KEYS[1], key) == ARGV[1] then
    n = n + redis.call('DEL', ARGV[2] .. key)
    redis.call('HDEL', KEYS[1], key)
  end
end
redis.call('DEL', KEYS[2])
return n`)
)

// millis turns a ttl into whole milliseconds for Redis (a positive ttl
// under 1 ms counts as 1 ms); <= 0 stays 0.
func millis(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return max(ttl.Milliseconds(), 1)
}

// storeError turns Redis's type errors into the store's.
func storeError(op, key string, err error, notInteger error) error {
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), "WRONGTYPE"):
		if notInteger != nil {
			return fmt.Errorf("%s %q: %w", op, key, notInteger)
		}
		return fmt.Errorf("%s %q: %w", op, key, store.ErrWrongType)
	case notInteger != nil && strings.Contains(err.Error(), "not an integer"):
		return fmt.Errorf("%s %q: %w", op, key, notInteger)
	}
	return fmt.Errorf("store %s %q: %w", op, key, err)
}

// Get returns the value under key.
func (s *Store) Get(ctx context.Context, key string) (any, bool, error) {
	res, err := getScript.Run(ctx, s.rdb, []string{s.key(key)}).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil || len(res) != 2 {
		return nil, false, storeError("get", key, err, nil)
	}
	switch res[0] {
	case "v":
		str, _ := res[1].(string)
		v, err := decode(str)
		return v, err == nil, err
	case "l":
		items, _ := res[1].([]any)
		list, err := decodeAll(items)
		return list, err == nil, err
	}
	pairs, _ := res[1].([]any)
	h := make(map[string]any, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		f, _ := pairs[i].(string)
		n, err := decode(fmt.Sprint(pairs[i+1]))
		if err != nil {
			return nil, false, fmt.Errorf("store get %q: %w", key, err)
		}
		h[f] = n
	}
	return h, true, nil
}

// decodeAll decodes the entries of a list.
func decodeAll(items []any) ([]any, error) {
	out := make([]any, len(items))
	for i, it := range items {
		str, _ := it.(string)
		v, err := decode(str)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (s *Store) set(ctx context.Context, key string, value any, ttl time.Duration, owner string, onlyIfAbsent bool) (bool, error) {
	enc, err := encode(value)
	if err != nil {
		return false, fmt.Errorf("store set %q: %w", key, err)
	}
	absent := "0"
	if onlyIfAbsent {
		absent = "1"
	}
	n, err := setScript.Run(ctx, s.rdb, []string{s.key(key), s.owners(), s.ownedBy(owner)},
		enc, millis(ttl), owner, key, absent).Int()
	if err == nil && n == 1 {
		s.held.remember(key, enc, owner, ttl)
	}
	return n == 1, storeError("set", key, err, nil)
}

// Set stores value under key.
func (s *Store) Set(ctx context.Context, key string, value any, ttl time.Duration, owner string) error {
	_, err := s.set(ctx, key, value, ttl, owner, false)
	return err
}

// Add stores value under key only if key is absent.
func (s *Store) Add(ctx context.Context, key string, value any, ttl time.Duration, owner string) (bool, error) {
	return s.set(ctx, key, value, ttl, owner, true)
}

// SetIf stores value only if the current value equals old.
func (s *Store) SetIf(ctx context.Context, key string, value, old any, ttl time.Duration) (bool, error) {
	if !isScalar(old) {
		return false, nil
	}
	enc, err := encode(value)
	if err != nil {
		return false, fmt.Errorf("store set %q: %w", key, err)
	}
	want, _ := encode(old)
	n, err := setIfScript.Run(ctx, s.rdb, []string{s.key(key)}, enc, want, millis(ttl)).Int()
	return n == 1, storeError("set", key, err, nil)
}

// Incr adds by to the whole number under key.
func (s *Store) Incr(ctx context.Context, key string, by int64, ttl time.Duration) (int64, error) {
	n, err := incrScript.Run(ctx, s.rdb, []string{s.key(key)}, by, millis(ttl)).Int64()
	return n, storeError("incr", key, err, store.ErrNotInteger)
}

// Delete removes key.
func (s *Store) Delete(ctx context.Context, key string) (bool, error) {
	n, err := deleteScript.Run(ctx, s.rdb, []string{s.key(key), s.owners()}, key, "", "0").Int()
	if err == nil {
		s.held.forget(key)
	}
	return n == 1, storeError("del", key, err, nil)
}

// DeleteIf removes key only if its value equals want.
func (s *Store) DeleteIf(ctx context.Context, key string, want any) (bool, error) {
	if !isScalar(want) {
		return false, nil
	}
	enc, _ := encode(want)
	n, err := deleteScript.Run(ctx, s.rdb, []string{s.key(key), s.owners()}, key, enc, "1").Int()
	if err == nil && n == 1 {
		s.held.forget(key)
	}
	return n == 1, storeError("del", key, err, nil)
}

// Keys returns up to limit keys starting with prefix, sorted. It scans
// the server's keys (SCAN, 1,000 at a time): its cost grows with all the
// keys Redis holds, not only the matching ones.
func (s *Store) Keys(ctx context.Context, prefix string, limit int) ([]string, error) {
	limit = min(max(limit, 0), store.MaxKeysListed)
	base := s.key("")
	var out []string
	iter := s.rdb.Scan(ctx, 0, globEscape(base+prefix)+"*", 1000).Iterator()
	for iter.Next(ctx) {
		out = append(out, strings.TrimPrefix(iter.Val(), base))
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("store keys %q: %w", prefix, err)
	}
	slices.Sort(out)
	out = slices.Compact(out) // SCAN may return a key twice
	return out[:min(len(out), limit)], nil
}

// globEscape escapes the characters SCAN's MATCH gives a meaning.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\^-`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// TTL returns the time key has left.
func (s *Store) TTL(ctx context.Context, key string) (time.Duration, bool, error) {
	d, err := s.rdb.PTTL(ctx, s.key(key)).Result()
	switch {
	case err != nil:
		return 0, false, fmt.Errorf("store ttl %q: %w", key, err)
	case d == -2: // go-redis keeps Redis's -2 (no such key) as is
		return 0, false, nil
	case d < 0:
		return 0, true, nil
	}
	return d, true, nil
}

// Expire gives key a new time to live.
func (s *Store) Expire(ctx context.Context, key string, ttl time.Duration) (bool, error) {
	n, err := expireScript.Run(ctx, s.rdb, []string{s.key(key)}, millis(ttl)).Int()
	return n == 1, storeError("expire", key, err, nil)
}

// Push appends value to the list under key.
func (s *Store) Push(ctx context.Context, key string, value any, keep int) (int, error) {
	enc, err := encode(value)
	if err != nil {
		return 0, fmt.Errorf("store push %q: %w", key, err)
	}
	keep = min(max(keep, 1), store.MaxListLength)
	n, err := pushScript.Run(ctx, s.rdb, []string{s.key(key)}, enc, keep).Int()
	return n, storeError("push", key, err, nil)
}

// Range returns entries from..to of the list under key.
func (s *Store) Range(ctx context.Context, key string, from, to int) ([]any, error) {
	items, err := rangeScript.Run(ctx, s.rdb, []string{s.key(key)}, from, to).Slice()
	if err != nil {
		return nil, storeError("range", key, err, nil)
	}
	return decodeAll(items)
}

// HIncr adds by to field of the hash under key.
func (s *Store) HIncr(ctx context.Context, key, field string, by int64) (int64, error) {
	n, err := s.rdb.HIncrBy(ctx, s.key(key), field, by).Result()
	return n, storeError("hincr", key, err, nil)
}

// ReleaseOwner removes the keys owner still holds.
func (s *Store) ReleaseOwner(ctx context.Context, owner string) (int, error) {
	s.held.release(owner)
	n, err := releaseScript.Run(ctx, s.rdb, []string{s.owners(), s.ownedBy(owner)}, owner, s.key("")).Int()
	if err != nil {
		return 0, fmt.Errorf("store release %q: %w", owner, err)
	}
	return n, nil
}
