package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keys bound to clients, kept through a Redis restart.
//
// A store key bound to a client (an owner) lives as long as the client.
// Each node remembers the bound keys it set, with their values and
// expiry, until they are deleted, set again without an owner, or their
// owner is released; when Redis comes back without them (restarted
// empty), the node sets them again (reclaim). A key someone else set
// meanwhile is left to them and forgotten here.

// heldKey is a bound key's value as this node set it.
type heldKey struct {
	owner   string
	enc     string
	expires time.Time // zero: never
}

// heldKeys are the bound keys a node's store set.
type heldKeys struct {
	mu   sync.Mutex
	keys map[string]heldKey // key name -> what was set
}

// remember records key as set to enc for owner ("" forgets it).
func (h *heldKeys) remember(key, enc, owner string, ttl time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if owner == "" {
		delete(h.keys, key)
		return
	}
	if h.keys == nil {
		h.keys = make(map[string]heldKey)
	}
	k := heldKey{owner: owner, enc: enc}
	if ttl > 0 {
		k.expires = time.Now().Add(ttl)
	}
	h.keys[key] = k
}

// forget drops key.
func (h *heldKeys) forget(key string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.keys, key)
}

// release drops every key of owner.
func (h *heldKeys) release(owner string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, v := range h.keys {
		if v.owner == owner {
			delete(h.keys, k)
		}
	}
}

// snapshot returns the keys not expired, forgetting the others.
func (h *heldKeys) snapshot() map[string]heldKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]heldKey, len(h.keys))
	now := time.Now()
	for k, v := range h.keys {
		if !v.expires.IsZero() && !v.expires.After(now) {
			delete(h.keys, k)
			continue
		}
		out[k] = v
	}
	return out
}

// reclaimScript: KEYS key, owners, owned-by-owner; ARGV value, ttl ms,
// owner, the key's name. Sets the key bound to owner when it is absent;
// returns 1 when owner holds it then, 0 when another value is there.
var reclaimScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[2], ARGV[4]) == ARGV[3] then return 1 end
  return 0
end
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
return 1`)

// Reclaim sets again the bound keys this node set that Redis lost.
func (s *Store) Reclaim(ctx context.Context) error {
	for key, k := range s.held.snapshot() {
		ttl := int64(0)
		if !k.expires.IsZero() {
			ttl = max(time.Until(k.expires).Milliseconds(), 1)
		}
		held, err := reclaimScript.Run(ctx, s.rdb, []string{s.key(key), s.owners(), s.ownedBy(k.owner)},
			k.enc, ttl, k.owner, key).Int()
		if err != nil {
			return fmt.Errorf("store reclaim %q: %w", key, err)
		}
		if held == 0 {
			s.held.forget(key)
		}
	}
	return nil
}
