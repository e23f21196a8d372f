package store

import (
	"context"
	"errors"
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
