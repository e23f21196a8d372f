package scripting

import (
	"fmt"
	"hash/fnv"
	"math"
	"sync"
	"time"

	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// Named timers (timer.at, and timer.every given a name) belong to the
// service, not to a state: they are kept in Go and outlive reloads. When
// one fires, the `timer(name, data)` handler of the version running then
// is called, in the state the name hashes to, through that state's inbox
// (the firing waits for room: a timer is never lost to a full inbox). A
// repeating one is armed again once its handler has run, so ticks never
// pile up behind a busy state.

// Bounds of the named timers of one service.
const (
	maxNamedTimers   = 10_000
	maxTimerNameLen  = 256
	maxTimerDataSize = 64 << 10
)

// namedTimers are a service's named timers.
type namedTimers struct {
	mu      sync.Mutex
	m       map[string]*namedTimer
	armings uint64 // numbers each arming, so that a replaced timer's late firing is ignored
	stopped bool
	clock   Clock // set once, before any timer is armed
}

// namedTimer is one pending named timer.
type namedTimer struct {
	name   string
	data   any // a Go copy of the Lua value (luaval), nil for none
	every  time.Duration
	next   time.Time // when it fires next
	arming uint64
	t      Timer
}

// set arms the timer name to fire at `at` (and then every `every`, if not
// zero), replacing one of that name; fire is called when it is due.
func (nt *namedTimers) set(name string, data any, at time.Time, every time.Duration, fire func(*namedTimer)) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.stopped {
		return fmt.Errorf("the service is stopping")
	}
	old := nt.m[name]
	if old == nil && len(nt.m) >= maxNamedTimers {
		return fmt.Errorf("too many named timers: a service may have at most %d pending", maxNamedTimers)
	}
	if old != nil {
		old.t.Stop()
	}
	if nt.m == nil {
		nt.m = make(map[string]*namedTimer)
	}
	nt.armings++
	t := &namedTimer{name: name, data: data, every: every, next: at, arming: nt.armings}
	t.t = nt.clock.AfterFunc(at.Sub(nt.clock.Now()), func() { fire(t) })
	nt.m[name] = t
	return nil
}

// cancel removes the timer name, reporting whether it was pending.
func (nt *namedTimers) cancel(name string) bool {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	t := nt.m[name]
	if t != nil {
		t.t.Stop()
		delete(nt.m, name)
	}
	return t != nil
}

// pending returns when the timer name fires next.
func (nt *namedTimers) pending(name string) (time.Time, bool) {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if t := nt.m[name]; t != nil {
		return t.next, true
	}
	return time.Time{}, false
}

// due is called as t fires: it reports whether t is still the live arming
// of its name, and drops a one-shot timer from the set.
func (nt *namedTimers) due(t *namedTimer) bool {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.stopped || nt.m[t.name] != t {
		return false
	}
	if t.every == 0 {
		delete(nt.m, t.name)
	}
	return true
}

// rearm arms a repeating timer again after its handler ran, unless it was
// cancelled or replaced meanwhile.
func (nt *namedTimers) rearm(t *namedTimer) {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.stopped || nt.m[t.name] != t {
		return
	}
	t.next = nt.clock.Now().Add(t.every)
	t.t.Reset(t.every)
}

// stopAll cancels every named timer, for good.
func (nt *namedTimers) stopAll() {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	nt.stopped = true
	for name, t := range nt.m {
		t.t.Stop()
		delete(nt.m, name)
	}
}

// fireNamed delivers a due named timer to the state its name hashes to,
// waiting for room in that state's inbox, then, for a repeating one, for
// its handler to run before arming it again.
func (s *Service) fireNamed(t *namedTimer) {
	select {
	case <-s.started: // a timer armed by start may fire before the service is up
	case <-s.ctx.Done():
		return
	}
	if !s.named.due(t) {
		return
	}
	handled := make(chan error, 1)
	ev := event{kind: evTimer, data: t.name, value: t.data, reply: handled}
	if !s.enqueue(namedPin(t.name), ev, true, s.ctx.Done()) {
		return // the service is stopping
	}
	if t.every == 0 {
		return
	}
	select {
	case <-handled:
		s.named.rearm(t)
	case <-s.ctx.Done():
	}
}

// namedPin is the state a timer's name is handled in.
func namedPin(name string) pin {
	h := fnv.New32a()
	h.Write([]byte(name))
	return pin(h.Sum32() & math.MaxInt32)
}

// runNamed runs the timer handler for a named timer's event.
func (st *state) runNamed(ev event) {
	defer close(ev.reply)
	fn := st.handlers[evTimer]
	if fn == nil {
		st.svc.log.Error("a named timer fired, but the script returns no timer handler", "timer", ev.data)
		return
	}
	data, err := luaval.FromGo(st.L, ev.value)
	if err != nil {
		data = lua.LNil
	}
	st.invoke(evTimer, nil, fn, 0, lua.LString(ev.data), data) //nolint:errcheck // reported
}

// namedTimerArgs reads timer.at's or a named timer.every's name and data
// (arguments 2 and 3), raising an error for a bad one.
func namedTimerArgs(L *lua.LState) (string, any) {
	name := L.CheckString(2)
	if name == "" || len(name) > maxTimerNameLen {
		L.ArgError(2, fmt.Sprintf("a timer name is 1 to %d bytes", maxTimerNameLen))
	}
	if L.GetTop() < 3 || L.Get(3) == lua.LNil {
		return name, nil
	}
	data, _, err := luaval.ToGoWithin(L.Context(), L.Get(3), maxTimerDataSize)
	if err != nil {
		L.ArgError(3, fmt.Sprintf("timer data: %v (at most %d KiB of strings, numbers, booleans and tables)", err, maxTimerDataSize>>10))
	}
	return name, data
}

// timerAt implements timer.at(unix_time, name [, data]).
func (st *state) timerAt(L *lua.LState) int {
	at := float64(L.CheckNumber(1))
	name, data := namedTimerArgs(L)
	when := time.Unix(0, int64(at*float64(time.Second)))
	st.setNamed(L, name, data, when, 0)
	return 0
}

// timerEveryNamed implements timer.every(seconds, name [, data]).
func (st *state) timerEveryNamed(L *lua.LState, seconds float64) int {
	if seconds < 0.001 {
		L.ArgError(1, "interval too short (at least 0.001 s)")
	}
	name, data := namedTimerArgs(L)
	every := time.Duration(seconds * float64(time.Second))
	st.setNamed(L, name, data, st.svc.clock.Now().Add(every), every)
	return 0
}

// setNamed arms a named timer of the service, raising an error when it
// cannot.
func (st *state) setNamed(L *lua.LState, name string, data any, at time.Time, every time.Duration) {
	svc := st.svc
	if err := svc.named.set(name, data, at, every, svc.fireNamed); err != nil {
		L.RaiseError("%s", err.Error())
	}
}
