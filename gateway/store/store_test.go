package store

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeClock lets a test move time.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestStore(max int) (*Store, *fakeClock) {
	s := New(max)
	clock := &fakeClock{t: time.Unix(1000, 0)}
	s.now = clock.now
	return s, clock
}

func TestSetGetExpire(t *testing.T) {
	s, clock := newTestStore(0)
	s.Set("a", "x", time.Second)
	s.Set("b", int64(1), 0)
	if v, ok := s.Get("a"); !ok || v != "x" {
		t.Fatalf("get a: %v %v", v, ok)
	}
	clock.t = clock.t.Add(time.Second)
	if _, ok := s.Get("a"); ok {
		t.Error("a should have expired")
	}
	if v, _ := s.Get("b"); v != int64(1) {
		t.Error("b without ttl should stay")
	}
}

func TestAddIncrDeleteIf(t *testing.T) {
	s, clock := newTestStore(0)
	if ok, _ := s.Add("nick:alice", "c1", 0); !ok {
		t.Fatal("first add failed")
	}
	if ok, _ := s.Add("nick:alice", "c2", 0); ok {
		t.Fatal("second add succeeded")
	}
	if s.DeleteIf("nick:alice", "c2") || !s.DeleteIf("nick:alice", "c1") {
		t.Fatal("DeleteIf must remove only the matching value")
	}
	for want := int64(1); want <= 3; want++ {
		if n, err := s.Incr("rate", 1, 10*time.Second); err != nil || n != want {
			t.Fatalf("incr: %d %v, want %d", n, err, want)
		}
	}
	clock.t = clock.t.Add(10 * time.Second) // the window set at creation ends
	if n, _ := s.Incr("rate", 1, 10*time.Second); n != 1 {
		t.Errorf("after the window, incr = %d, want 1", n)
	}
	s.Set("text", "x", 0)
	if _, err := s.Incr("text", 1, 0); !errors.Is(err, ErrNotInteger) {
		t.Errorf("incr of a string: %v", err)
	}
}

func TestBoundAndSweep(t *testing.T) {
	s, clock := newTestStore(2)
	s.Set("a", 1, time.Second)
	s.Set("b", 1, 0)
	if err := s.Set("c", 1, 0); !errors.Is(err, ErrFull) {
		t.Fatalf("third key: %v, want ErrFull", err)
	}
	if err := s.Set("b", 2, 0); err != nil {
		t.Errorf("replacing a key in a full store: %v", err)
	}
	clock.t = clock.t.Add(2 * time.Second)
	if n := s.Sweep(); n != 1 || s.Len() != 1 {
		t.Errorf("sweep removed %d, %d left", n, s.Len())
	}
	if err := s.Set("c", 1, 0); err != nil {
		t.Errorf("after the sweep: %v", err)
	}
}

func TestConcurrentIncrIsAtomic(t *testing.T) {
	s := New(0)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				s.Incr("n", 1, 0)
			}
		}()
	}
	wg.Wait()
	if v, _ := s.Get("n"); v != int64(8000) {
		t.Errorf("n = %v, want 8000", v)
	}
}

func TestSweepEveryStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { New(0).SweepEvery(ctx, time.Millisecond); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("SweepEvery did not stop")
	}
}

func TestRicherOperations(t *testing.T) {
	s := New(0)
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	for _, k := range []string{"b:2", "a:1", "b:1", "c"} {
		s.Set(k, "v", 0)
	}
	if got := s.Keys("b:", 10); !slices.Equal(got, []string{"b:1", "b:2"}) {
		t.Errorf("Keys(b:) = %v", got)
	}
	if got := s.Keys("", 2); len(got) != 2 {
		t.Errorf("Keys limit 2 = %v", got)
	}
	if !s.SetIf("c", "w", "v", 0) || s.SetIf("c", "x", "v", 0) {
		t.Error("compare-and-set")
	}
	if left, ok := s.TTL("c"); !ok || left != 0 {
		t.Errorf("TTL of a key without expiry: %v %v", left, ok)
	}
	s.Expire("c", 30*time.Second)
	if left, _ := s.TTL("c"); left != 30*time.Second {
		t.Errorf("TTL after Expire: %v", left)
	}
	if _, ok := s.TTL("missing"); ok {
		t.Error("TTL of a missing key")
	}
	for i := range 5 {
		s.Push("l", int64(i), 3)
	}
	if got, _ := s.Range("l", 1, -1); !slices.Equal(got, []any{int64(2), int64(3), int64(4)}) {
		t.Errorf("Range = %v", got)
	}
	if got, _ := s.Range("l", -2, -1); !slices.Equal(got, []any{int64(3), int64(4)}) {
		t.Errorf("Range(-2, -1) = %v", got)
	}
	s.HIncr("h", "yes", 2)
	if n, _ := s.HIncr("h", "yes", 1); n != 3 {
		t.Errorf("HIncr = %d", n)
	}
	if _, err := s.HIncr("l", "x", 1); !errors.Is(err, ErrWrongType) {
		t.Errorf("HIncr on a list: %v", err)
	}
	if ok, _ := s.AddOwned("nick:ann", "c1", 0, "c1"); !ok {
		t.Fatal("AddOwned")
	}
	s.SetOwned("lock", "c1", 0, "c1")
	s.Set("lock", "c2", 0) // taken over without an owner: not c1's any more
	if n := s.ReleaseOwner("c1"); n != 1 {
		t.Errorf("ReleaseOwner removed %d keys, want 1", n)
	}
	if _, ok := s.Get("nick:ann"); ok {
		t.Error("an owned key outlived its owner")
	}
	if v, _ := s.Get("lock"); v != "c2" {
		t.Errorf("a key set since by someone else was removed: %v", v)
	}
}
