package store

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Limits of the richer operations.
const (
	// MaxKeysListed is the most keys Keys returns at once.
	MaxKeysListed = 1000
	// MaxListLength is the most entries a list may keep.
	MaxListLength = 10_000
)

// Errors of the richer operations.
var (
	// ErrWrongType: the key holds a value of another kind (a list where a
	// hash is wanted, say).
	ErrWrongType = errors.New("the key holds another kind of value")
)

// list and hash are the values Push and HIncr keep; Get returns a copy in
// the plain Go form ([]any, map[string]any).
type (
	list []any
	hash map[string]int64
)

// plain returns v as Get shows it.
func plain(v any) any {
	switch v := v.(type) {
	case list:
		return slices.Clone([]any(v))
	case hash:
		m := make(map[string]any, len(v))
		for k, n := range v {
			m[k] = n
		}
		return m
	}
	return v
}

// Keys returns up to limit keys (at most MaxKeysListed) that start with
// prefix, in order.
func (s *Store) Keys(prefix string, limit int) []string {
	limit = min(max(limit, 0), MaxKeysListed)
	s.mu.Lock()
	now := s.now()
	var out []string
	for k, it := range s.items {
		if strings.HasPrefix(k, prefix) && it.live(now) {
			out = append(out, k)
		}
	}
	s.mu.Unlock()
	slices.Sort(out)
	return out[:min(len(out), limit)]
}

// SetIf stores value under key only if its current value equals old (a
// string, number or boolean), keeping its expiry unless ttl > 0, and
// reports whether it did: compare-and-set.
func (s *Store) SetIf(key string, value, old any, ttl time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.lookup(key)
	if !ok || !scalarEqual(it.value, old) {
		return false
	}
	it.value = value
	if ttl > 0 {
		it.expires = s.expiry(ttl)
	}
	s.items[key] = it
	return true
}

// TTL returns the time key has left: ok is false when the key is absent,
// and left is 0 when it never expires.
func (s *Store) TTL(key string) (left time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.lookup(key)
	if !ok || it.expires.IsZero() {
		return 0, ok
	}
	return it.expires.Sub(s.now()), true
}

// Expire gives key a new time to live (ttl <= 0: it never expires) and
// reports whether the key exists.
func (s *Store) Expire(key string, ttl time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.lookup(key)
	if ok {
		it.expires = s.expiry(ttl)
		s.items[key] = it
	}
	return ok
}

// Push appends value to the list under key (created when absent), keeping
// its last keep entries (at most MaxListLength), and returns its length.
func (s *Store) Push(key string, value any, keep int) (int, error) {
	keep = min(max(keep, 1), MaxListLength)
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.lookup(key)
	if !ok {
		it = item{value: list(nil)}
	}
	l, isList := it.value.(list)
	if !isList {
		return 0, fmt.Errorf("push %q: %w", key, ErrWrongType)
	}
	l = append(l, value)
	if len(l) > keep {
		l = slices.Clone(l[len(l)-keep:])
	}
	it.value = l
	if err := s.put(key, it); err != nil {
		return 0, err
	}
	return len(l), nil
}

// Range returns the entries from..to (1-based, inclusive; negative counts
// from the end, -1 being the last) of the list under key.
func (s *Store) Range(key string, from, to int) ([]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.lookup(key)
	if !ok {
		return nil, nil
	}
	l, isList := it.value.(list)
	if !isList {
		return nil, fmt.Errorf("range %q: %w", key, ErrWrongType)
	}
	n := len(l)
	if from < 0 {
		from += n + 1
	}
	if to < 0 {
		to += n + 1
	}
	from, to = max(from, 1), min(to, n)
	if from > to {
		return []any{}, nil
	}
	return slices.Clone([]any(l[from-1 : to])), nil
}

// HIncr adds by to field of the hash under key (created when absent) and
// returns the field's new value.
func (s *Store) HIncr(key, field string, by int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.lookup(key)
	if !ok {
		it = item{value: hash{}}
	}
	h, isHash := it.value.(hash)
	if !isHash {
		return 0, fmt.Errorf("hincr %q: %w", key, ErrWrongType)
	}
	h[field] += by
	if err := s.put(key, it); err != nil {
		return 0, err
	}
	return h[field], nil
}

// SetOwned is Set for a key bound to an owner's life (a client's id):
// ReleaseOwner removes it. Claims such as a chat nick use it, so that they
// go when their client does.
func (s *Store) SetOwned(key string, value any, ttl time.Duration, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putOwned(key, item{value: value, expires: s.expiry(ttl)}, owner)
}

// AddOwned is Add for a key bound to owner's life.
func (s *Store) AddOwned(key string, value any, ttl time.Duration, owner string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.lookup(key); ok {
		return false, nil
	}
	if err := s.putOwned(key, item{value: value, expires: s.expiry(ttl)}, owner); err != nil {
		return false, err
	}
	return true, nil
}

// putOwned stores it under key and records that owner holds it.
func (s *Store) putOwned(key string, it item, owner string) error {
	it.owner = owner
	if err := s.put(key, it); err != nil {
		return err
	}
	if s.owned == nil {
		s.owned = make(map[string]map[string]struct{})
	}
	if s.owned[owner] == nil {
		s.owned[owner] = make(map[string]struct{})
	}
	s.owned[owner][key] = struct{}{}
	return nil
}

// ReleaseOwner removes every key owner still holds (a key since set
// without an owner, or by another, is left alone), and returns how many.
func (s *Store) ReleaseOwner(owner string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for key := range s.owned[owner] {
		if it, ok := s.items[key]; ok && it.owner == owner {
			delete(s.items, key)
			n++
		}
	}
	delete(s.owned, owner)
	return n
}
