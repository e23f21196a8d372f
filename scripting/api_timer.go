package scripting

import (
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// maxTimers bounds the timers one state may have pending.
const maxTimers = 10000

// timers are the pending timers of one state. Only the state's goroutine
// touches the map. A firing timer does not go through the inbox, where a
// script with thousands of timers could crowd out connects and messages:
// it adds its id to fired and signals ready, and the state's goroutine runs
// the callbacks, taking an inbox event between any two of them. fired is
// bounded by the pending timers (a timer fires once per arming, and a
// repeating one is armed again only after its callback ran).
type timers struct {
	next int64
	m    map[int64]*luaTimer

	mu    sync.Mutex
	fired []int64       // ids whose time has come, in order
	ready chan struct{} // has a value while fired is not empty
}

// luaTimer is a callback scheduled by timer.after or timer.every.
type luaTimer struct {
	fn    *lua.LFunction
	every time.Duration // 0 for a one-shot timer
	t     Timer
}

func (ts *timers) init() {
	ts.m = make(map[int64]*luaTimer)
	ts.ready = make(chan struct{}, 1)
}

// fire records that timer id is due; it runs on the timer's goroutine.
func (ts *timers) fire(id int64) {
	ts.mu.Lock()
	ts.fired = append(ts.fired, id)
	ts.mu.Unlock()
	ts.signal()
}

// signal makes ready hold a value.
func (ts *timers) signal() {
	select {
	case ts.ready <- struct{}{}:
	default: // already signalled
	}
}

// takeFired returns the first id fired and not yet taken (0 if none), and
// whether more are waiting.
func (ts *timers) takeFired() (id int64, more bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.fired) == 0 {
		return 0, false
	}
	id = ts.fired[0]
	ts.fired = ts.fired[1:]
	if len(ts.fired) == 0 {
		ts.fired = nil
	}
	return id, len(ts.fired) > 0
}

// stopAll cancels every pending timer.
func (ts *timers) stopAll() {
	for id, t := range ts.m {
		t.t.Stop()
		delete(ts.m, id)
	}
}

// openTimer installs the `timer` module: after, every and cancel for the
// state's closure timers, and at, every, pending and cancel given a name
// for the service's named timers (named_timers.go).
func (st *state) openTimer() {
	st.setModule("timer", map[string]lua.LGFunction{
		"after": func(L *lua.LState) int { return st.schedule(L, false) },
		"every": func(L *lua.LState) int {
			if _, named := L.Get(2).(lua.LString); named {
				return st.timerEveryNamed(L, float64(L.CheckNumber(1)))
			}
			return st.schedule(L, true)
		},
		"at": st.timerAt,
		"pending": func(L *lua.LState) int {
			at, ok := st.svc.named.pending(L.CheckString(1))
			if !ok {
				L.Push(lua.LNil)
				return 1
			}
			L.Push(lua.LNumber(float64(at.UnixNano()) / float64(time.Second)))
			return 1
		},
		"cancel": func(L *lua.LState) int {
			if name, named := L.Get(1).(lua.LString); named {
				L.Push(lua.LBool(st.svc.named.cancel(string(name))))
				return 1
			}
			id := L.CheckInt64(1)
			t := st.timers.m[id]
			if t != nil {
				t.t.Stop()
				delete(st.timers.m, id)
			}
			L.Push(lua.LBool(t != nil))
			return 1
		},
	})
}

// schedule implements timer.after(seconds, fn) and timer.every(seconds, fn).
func (st *state) schedule(L *lua.LState, repeat bool) int {
	seconds := float64(L.CheckNumber(1))
	fn := L.CheckFunction(2)
	if seconds < 0 || (repeat && seconds < 0.001) {
		L.ArgError(1, "interval too short (at least 0.001 s for timer.every, 0 for timer.after)")
	}
	if len(st.timers.m) >= maxTimers {
		L.RaiseError("too many timers: a state may have at most %d pending", maxTimers)
	}
	st.timers.next++
	id := st.timers.next
	d := time.Duration(seconds * float64(time.Second))
	t := &luaTimer{fn: fn}
	if repeat {
		t.every = d
	}
	t.t = st.svc.clock.AfterFunc(d, func() { st.timers.fire(id) })
	st.timers.m[id] = t
	L.Push(lua.LNumber(id))
	return 1
}

// runFired runs the callback of the first timer that fired. When more
// have fired it signals ready again, so that the event loop, which picks
// among ready channels at random, takes inbox events (connects, messages)
// between the callbacks and timers never starve the clients.
func (st *state) runFired() {
	id, more := st.timers.takeFired()
	if more {
		st.timers.signal()
	}
	if id != 0 {
		st.fireTimer(id)
	}
}

// fireTimer runs a timer's callback; a repeating timer is armed again once
// its callback has run, so ticks never pile up behind a slow state.
func (st *state) fireTimer(id int64) {
	t := st.timers.m[id]
	if t == nil {
		return // cancelled after it fired
	}
	if t.every == 0 {
		delete(st.timers.m, id)
	}
	st.invoke(evTimer, nil, t.fn, 0) //nolint:errcheck // reported
	if t.every > 0 && st.timers.m[id] == t {
		t.t.Reset(t.every)
	}
}
