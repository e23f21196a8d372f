// Package store is a service-wide key-value store held in memory and safe
// for concurrent use: every Lua state of a service reaches the same one.
// Keys may expire; the atomic operations (add if absent, increment, delete
// if equal) are what uniqueness checks, counters and rate limits need.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultMaxKeys bounds a store's size when New is given no bound.
const DefaultMaxKeys = 1_000_000

// Errors returned by the store.
var (
	// ErrFull: the store holds its maximum number of keys; nothing was added.
	ErrFull = errors.New("store full")
	// ErrNotInteger: Incr found a value that is not a whole number.
	ErrNotInteger = errors.New("value is not a whole number")
)

// Store maps string keys to values (the plain Go values of package luaval:
// nil, bool, int64, float64, string, []any, map[string]any), each with an
// optional expiry.
type Store struct {
	mu      sync.Mutex
	items   map[string]item
	owned   map[string]map[string]struct{} // owner -> keys it was given (see SetOwned)
	maxKeys int
	now     func() time.Time
}

type item struct {
	value   any
	expires time.Time // zero: never
	owner   string    // "": none; else removed by ReleaseOwner(owner)
}

func (it item) live(now time.Time) bool { return it.expires.IsZero() || now.Before(it.expires) }

// Option configures a Store.
type Option func(*Store)

// WithClock makes the store read the time from now (time.Now by default)
// to set and check expiries: a test's virtual clock expires keys without
// waiting.
func WithClock(now func() time.Time) Option {
	return func(s *Store) {
		if now != nil {
			s.now = now
		}
	}
}

// New returns an empty store that holds at most maxKeys keys
// (DefaultMaxKeys when maxKeys <= 0).
func New(maxKeys int, opts ...Option) *Store {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	s := &Store{items: make(map[string]item), maxKeys: maxKeys, now: time.Now}
	for _, opt := range opts {
		opt(s)
	}
	return s
}

// expiry turns a time to live into an expiry time; ttl <= 0 means never.
func (s *Store) expiry(ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return s.now().Add(ttl)
}

// lookup returns the live item under key, removing it if it has expired.
func (s *Store) lookup(key string) (item, bool) {
	it, ok := s.items[key]
	if ok && !it.live(s.now()) {
		delete(s.items, key)
		return item{}, false
	}
	return it, ok
}

// put stores it under key unless that would exceed the bound.
func (s *Store) put(key string, it item) error {
	if _, exists := s.items[key]; !exists && len(s.items) >= s.maxKeys {
		return fmt.Errorf("%w: %d keys", ErrFull, s.maxKeys)
	}
	s.items[key] = it
	return nil
}

// Get returns the value under key.
func (s *Store) Get(key string) (any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.lookup(key)
	return plain(it.value), ok
}

// Set stores value under key, expiring after ttl (never when ttl <= 0).
func (s *Store) Set(key string, value any, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.put(key, item{value: value, expires: s.expiry(ttl)})
}

// Add stores value under key only if key is absent, and reports whether it did.
func (s *Store) Add(key string, value any, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.lookup(key); ok {
		return false, nil
	}
	if err := s.put(key, item{value: value, expires: s.expiry(ttl)}); err != nil {
		return false, err
	}
	return true, nil
}

// Incr adds by to the whole number under key and returns the result. An
// absent key counts as 0 and is created with the given ttl; an existing
// key keeps its expiry.
func (s *Store) Incr(key string, by int64, ttl time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.lookup(key)
	if !ok {
		it = item{value: int64(0), expires: s.expiry(ttl)}
	}
	n, isInt := it.value.(int64)
	if !isInt {
		return 0, fmt.Errorf("incr %q: %w", key, ErrNotInteger)
	}
	it.value = n + by
	if err := s.put(key, it); err != nil {
		return 0, err
	}
	return n + by, nil
}

// Delete removes key and reports whether it was there.
func (s *Store) Delete(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.lookup(key)
	delete(s.items, key)
	return ok
}

// DeleteIf removes key only if its value equals want (a string, number or
// boolean), and reports whether it did.
func (s *Store) DeleteIf(key string, want any) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.lookup(key)
	if !ok || !scalarEqual(it.value, want) {
		return false
	}
	delete(s.items, key)
	return true
}

func scalarEqual(a, b any) bool {
	switch a.(type) {
	case string, int64, float64, bool:
		return a == b
	}
	return false
}

// Len returns how many keys are stored, expired ones not yet swept included.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}

// Sweep removes every expired key and returns how many it removed.
func (s *Store) Sweep() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now, n := s.now(), 0
	for k, it := range s.items {
		if !it.live(now) {
			delete(s.items, k)
			n++
		}
	}
	return n
}

// SweepEvery sweeps expired keys every interval until ctx is done.
func (s *Store) SweepEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.Sweep()
		case <-ctx.Done():
			return
		}
	}
}
