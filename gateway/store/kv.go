package store

import (
	"context"
	"time"
)

// KV is a service's store as its scripts reach it: the in-process Store
// (Local), or a store shared by the nodes of a cluster (gateway/cluster,
// in Redis). Both keep the same guarantees: each operation is atomic,
// expiries hold, and keys bound to an owner go when ReleaseOwner is
// called for it. Values are the plain Go values of package luaval (nil,
// bool, int64, float64, string, []any, map[string]any).
//
// Every method takes a context, since a shared store waits on the
// network, and may fail for that reason too.
type KV interface {
	// Get returns the value under key and whether there is one.
	Get(ctx context.Context, key string) (any, bool, error)
	// Set stores value under key, expiring after ttl (never when ttl <=
	// 0), bound to owner's life unless owner is "".
	Set(ctx context.Context, key string, value any, ttl time.Duration, owner string) error
	// Add is Set only if key is absent; it reports whether it stored.
	Add(ctx context.Context, key string, value any, ttl time.Duration, owner string) (bool, error)
	// SetIf stores value only if the current value equals old (a scalar),
	// keeping the expiry unless ttl > 0: compare-and-set.
	SetIf(ctx context.Context, key string, value, old any, ttl time.Duration) (bool, error)
	// Incr adds by to the whole number under key (absent: 0, created with
	// ttl) and returns the result; ErrNotInteger for another value.
	Incr(ctx context.Context, key string, by int64, ttl time.Duration) (int64, error)
	// Delete removes key and reports whether it was there.
	Delete(ctx context.Context, key string) (bool, error)
	// DeleteIf removes key only if its value equals want (a scalar).
	DeleteIf(ctx context.Context, key string, want any) (bool, error)
	// Keys returns up to limit (at most MaxKeysListed) keys starting with
	// prefix, sorted.
	Keys(ctx context.Context, prefix string, limit int) ([]string, error)
	// TTL returns the time key has left (0: it never expires) and whether
	// it exists.
	TTL(ctx context.Context, key string) (time.Duration, bool, error)
	// Expire gives key a new time to live (<= 0: never expires) and
	// reports whether it exists.
	Expire(ctx context.Context, key string, ttl time.Duration) (bool, error)
	// Push appends value to the list under key, keeping its last keep
	// entries (at most MaxListLength), and returns its length.
	Push(ctx context.Context, key string, value any, keep int) (int, error)
	// Range returns entries from..to (1-based, inclusive, negative from
	// the end) of the list under key.
	Range(ctx context.Context, key string, from, to int) ([]any, error)
	// HIncr adds by to field of the hash under key and returns its value.
	HIncr(ctx context.Context, key, field string, by int64) (int64, error)
	// ReleaseOwner removes the keys owner still holds and returns how many.
	ReleaseOwner(ctx context.Context, owner string) (int, error)
}

// Local returns s as a KV. Its operations never wait and never fail for
// want of a network; the context is not consulted.
func (s *Store) Local() KV { return local{s} }

// local adapts a Store to KV.
type local struct{ s *Store }

func (l local) Get(_ context.Context, key string) (any, bool, error) {
	v, ok := l.s.Get(key)
	return v, ok, nil
}

func (l local) Set(_ context.Context, key string, value any, ttl time.Duration, owner string) error {
	if owner != "" {
		return l.s.SetOwned(key, value, ttl, owner)
	}
	return l.s.Set(key, value, ttl)
}

func (l local) Add(_ context.Context, key string, value any, ttl time.Duration, owner string) (bool, error) {
	if owner != "" {
		return l.s.AddOwned(key, value, ttl, owner)
	}
	return l.s.Add(key, value, ttl)
}

func (l local) SetIf(_ context.Context, key string, value, old any, ttl time.Duration) (bool, error) {
	return l.s.SetIf(key, value, old, ttl), nil
}

func (l local) Incr(_ context.Context, key string, by int64, ttl time.Duration) (int64, error) {
	return l.s.Incr(key, by, ttl)
}

func (l local) Delete(_ context.Context, key string) (bool, error) { return l.s.Delete(key), nil }

func (l local) DeleteIf(_ context.Context, key string, want any) (bool, error) {
	return l.s.DeleteIf(key, want), nil
}

func (l local) Keys(_ context.Context, prefix string, limit int) ([]string, error) {
	return l.s.Keys(prefix, limit), nil
}

func (l local) TTL(_ context.Context, key string) (time.Duration, bool, error) {
	left, ok := l.s.TTL(key)
	return left, ok, nil
}

func (l local) Expire(_ context.Context, key string, ttl time.Duration) (bool, error) {
	return l.s.Expire(key, ttl), nil
}

func (l local) Push(_ context.Context, key string, value any, keep int) (int, error) {
	return l.s.Push(key, value, keep)
}

func (l local) Range(_ context.Context, key string, from, to int) ([]any, error) {
	return l.s.Range(key, from, to)
}

func (l local) HIncr(_ context.Context, key, field string, by int64) (int64, error) {
	return l.s.HIncr(key, field, by)
}

func (l local) ReleaseOwner(_ context.Context, owner string) (int, error) {
	return l.s.ReleaseOwner(owner), nil
}
