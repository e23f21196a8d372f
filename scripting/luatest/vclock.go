package luatest

import (
	"context"
	"sync"
	"time"

	"github.com/moongate/moongate/scripting"
)

// VirtualClock is a scripting.Clock whose time moves only when Advance
// moves it. A timer due at or before the clock's time fires when the
// harness fires it (FireDue), each callback on a goroutine of its own as
// with time.AfterFunc; the clock counts the callbacks still running so
// that the harness can wait for them.
type VirtualClock struct {
	mu      sync.Mutex
	now     time.Time
	seq     uint64
	pending map[*vtimer]struct{}
	running int           // callbacks started and not returned
	idle    chan struct{} // closed when running drops to 0; nil while nobody waits
}

var _ scripting.Clock = (*VirtualClock)(nil)

// NewVirtualClock returns a clock that reads start until advanced.
func NewVirtualClock(start time.Time) *VirtualClock {
	return &VirtualClock{now: start, pending: make(map[*vtimer]struct{})}
}

// vtimer is a callback waiting for the virtual time when.
type vtimer struct {
	c    *VirtualClock
	when time.Time
	seq  uint64 // orders timers due at the same instant by arming
	f    func()
}

// Now returns the virtual time.
func (c *VirtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc arms f to run once the virtual time has moved d forward.
func (c *VirtualClock) AfterFunc(d time.Duration, f func()) scripting.Timer {
	t := &vtimer{c: c, f: f}
	t.Reset(d)
	return t
}

// Stop disarms t, reporting whether it was armed.
func (t *vtimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, armed := t.c.pending[t]
	delete(t.c.pending, t)
	return armed
}

// Reset arms t for d after the virtual time now, reporting whether it was armed.
func (t *vtimer) Reset(d time.Duration) bool {
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	_, armed := c.pending[t]
	c.seq++
	t.when, t.seq = c.now.Add(max(d, 0)), c.seq
	c.pending[t] = struct{}{}
	return armed
}

// next returns the first armed timer due at or before limit, or nil.
func (c *VirtualClock) next(limit time.Time) *vtimer {
	var first *vtimer
	for t := range c.pending {
		if t.when.After(limit) {
			continue
		}
		if first == nil || t.when.Before(first.when) || (t.when.Equal(first.when) && t.seq < first.seq) {
			first = t
		}
	}
	return first
}

// FireDue fires the first timer due at the current time, if any, and
// reports whether it did.
func (c *VirtualClock) FireDue() bool {
	c.mu.Lock()
	return c.fire(c.next(c.now))
}

// Step moves the time to the first timer due at or before limit and
// fires it, reporting whether there was one; when there is none, it moves
// the time to limit (never backwards).
func (c *VirtualClock) Step(limit time.Time) bool {
	c.mu.Lock()
	t := c.next(limit)
	if t == nil {
		if limit.After(c.now) {
			c.now = limit
		}
		c.mu.Unlock()
		return false
	}
	if t.when.After(c.now) {
		c.now = t.when
	}
	return c.fire(t)
}

// fire disarms t and starts its callback; c.mu is held and released.
func (c *VirtualClock) fire(t *vtimer) bool {
	if t == nil {
		c.mu.Unlock()
		return false
	}
	delete(c.pending, t)
	c.running++
	c.mu.Unlock()
	go func() {
		defer c.done()
		t.f()
	}()
	return true
}

// done counts a callback returned.
func (c *VirtualClock) done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running--
	if c.running == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// WaitCallbacks returns once no callback is running, or ctx is done.
func (c *VirtualClock) WaitCallbacks(ctx context.Context) error {
	c.mu.Lock()
	if c.running == 0 {
		c.mu.Unlock()
		return nil
	}
	if c.idle == nil {
		c.idle = make(chan struct{})
	}
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
