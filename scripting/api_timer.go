package scripting

import (
	"time"

	lua "github.com/yuin/gopher-lua"
)

// maxTimers bounds the timers one state may have pending.
const maxTimers = 10000

// timers are the pending timers of one state. Only the state's goroutine
// touches the map; a firing timer reaches the state through its inbox.
type timers struct {
	next int64
	m    map[int64]*luaTimer
}

// luaTimer is a callback scheduled by timer.after or timer.every.
type luaTimer struct {
	fn    *lua.LFunction
	every time.Duration // 0 for a one-shot timer
	t     *time.Timer
}

func (ts *timers) init() { ts.m = make(map[int64]*luaTimer) }

// stopAll cancels every pending timer.
func (ts *timers) stopAll() {
	for id, t := range ts.m {
		t.t.Stop()
		delete(ts.m, id)
	}
}

// openTimer installs the `timer` module: after, every and cancel.
func (st *state) openTimer() {
	st.setModule("timer", map[string]lua.LGFunction{
		"after": func(L *lua.LState) int { return st.schedule(L, false) },
		"every": func(L *lua.LState) int { return st.schedule(L, true) },
		"cancel": func(L *lua.LState) int {
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
	t.t = time.AfterFunc(d, func() { st.enqueueTimer(id) })
	st.timers.m[id] = t
	L.Push(lua.LNumber(id))
	return 1
}

// enqueueTimer hands a fired timer to the state. It runs on the timer's own
// goroutine, so waiting for room in the inbox delays nothing else.
func (st *state) enqueueTimer(id int64) {
	select {
	case st.inbox <- event{kind: evTimer, timer: id}:
	case <-st.gen.ctx.Done(): // the state's version was replaced or stopped
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
	st.invoke(evTimer, nil, t.fn, 0)
	if t.every > 0 && st.timers.m[id] == t {
		t.t.Reset(t.every)
	}
}
