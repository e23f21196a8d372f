package store

import (
	"testing"
	"time"
)

func TestExpiryFollowsTheGivenClock(t *testing.T) {
	now := time.Unix(1000, 0)
	s := New(0, WithClock(func() time.Time { return now }))
	if err := s.Set("k", "v", 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Incr("window", 1, 10*time.Second); n != 1 {
		t.Fatalf("incr: %d", n)
	}
	now = now.Add(2999 * time.Millisecond)
	if _, ok := s.Get("k"); !ok {
		t.Fatal("expired before its time")
	}
	if left, ok := s.TTL("k"); !ok || left != time.Millisecond {
		t.Fatalf("ttl %v, %v", left, ok)
	}
	now = now.Add(time.Millisecond)
	if _, ok := s.Get("k"); ok {
		t.Fatal("still there at its expiry")
	}
	now = now.Add(7 * time.Second)
	if n, _ := s.Incr("window", 1, 10*time.Second); n != 1 {
		t.Fatalf("a new window starts at 1, got %d", n)
	}
}
