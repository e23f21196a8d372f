package scripting

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/cluster"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/prometheus/client_golang/prometheus"
	lua "github.com/yuin/gopher-lua"
)

type eventKind uint8

const (
	evStart eventKind = iota
	evConnect
	evMessage
	evClose
	evTimer
	evReload
	evBarrier
	evHTTP
	evGone // a client of a dead node of the cluster: the close handler runs for it
)

var eventNames = [...]string{evStart: "start", evConnect: "connect", evMessage: "message", evClose: "close",
	evTimer: "timer", evReload: "reload", evBarrier: "barrier", evHTTP: "http", evGone: "close"}

// event is one thing for a state to do. It travels by value through the inbox.
type event struct {
	kind  eventKind
	c     *client.Client
	data  string
	op    ws.OpCode
	how   client.Closed
	value any        // evTimer of a named timer: its data (data holds its name)
	reply chan error // evConnect: the outcome; evBarrier, evTimer: closed when done
	http  *httpCall  // evHTTP (httphandler.go)
}

// state is one Lua state running the script, and the goroutine that owns it.
type state struct {
	svc   *Service
	gen   *generation
	index int
	L     *lua.LState
	inbox chan event
	// inboxBytes bounds the payload bytes of the messages in inbox (inbox.go).
	inboxBytes inboxBytes

	handlers  map[eventKind]*lua.LFunction
	returned  *lua.LTable // the table the script's top level returned
	durations [len(eventNames)]prometheus.Observer
	clients   map[*client.Client]*lua.LUserData // userdata of the clients pinned here
	timers    timers

	// Budget enforcement. While a call (a handler, the top level) runs,
	// its goroutine is locked to its OS thread, whose CPU clock is
	// runningClock: the call is charged the CPU time it used, not the time
	// it waited for a CPU. running is the number of the call under way (0
	// when idle); the watchdog cancels runCtx when a call runs too long.
	//
	// A handler suspended on a call (suspend.go) runs in several slices;
	// each is a call here, and charged holds what the slices before it
	// used. The watchdog publishes, in sliceSeen and sliceBase, the call it
	// first saw and the thread's CPU time then, so that a slice ending in a
	// wait can add what it used to its handler's account.
	calls        uint64 // calls made so far; the baton holder's own
	running      atomic.Uint64
	runningClock atomic.Int32
	current      atomic.Pointer[runner] // the runner of the running call
	charged      atomic.Int64           // CPU time used by the running handler's earlier slices
	runMu        sync.Mutex             // guards the runners' cancel functions against the watchdog
	stopReason   atomic.Int32           // why the watchdog stopped the last call
	sliceSeen    atomic.Uint64
	sliceBase    atomic.Int64
	seenCall     uint64 // the watchdog's own: the call it last saw running
	heapBase     uint64 // the watchdog's own: the heap when it first saw that call
	cpuBase      time.Duration

	// Handlers and their suspension (suspend.go); all the baton holder's.
	main     *runner   // the runner on L, for the top level and start
	free     []*runner // runners with no handler
	cur      *runner   // the runner of the handler running now, if any
	serving  bool      // the event loop has started: a wait suspends
	draining bool      // retired: finish what is queued and suspended, then close
	waiting  int       // handlers suspended
	deferred int       // events waiting in busy
	busy     map[*client.Client][]event
	resumed  chan *runner // suspended handlers whose call is done
}

// newState creates a sandboxed Lua state with the API installed; nothing
// has run in it yet (see load).
func newState(s *Service, gen *generation, index int) *state {
	st := &state{
		svc:     s,
		gen:     gen,
		index:   index,
		L:       newSandboxedState(),
		inbox:   make(chan event, max(gen.ep.Inbox, 1)),
		clients: make(map[*client.Client]*lua.LUserData),
		busy:    make(map[*client.Client][]event),
		resumed: make(chan *runner, maxSuspended),
	}
	st.timers.init()
	for k, name := range eventNames {
		st.durations[k] = s.metrics.Handler(name)
	}
	st.main = newRunner(st.L)
	st.free = []*runner{st.main}
	st.installAPI()
	return st
}

// load runs the compiled script's top level, under the budget like a
// handler, and keeps the handlers the table it returns names.
func (st *state) load(proto *lua.FunctionProto) error {
	fn := st.L.NewFunctionFromProto(proto)
	if err := st.protectedCall(st.main, fn, 1); err != nil {
		return err
	}
	ret := st.L.Get(-1)
	st.L.Pop(1)
	tbl, ok := ret.(*lua.LTable)
	st.returned = tbl
	if !ok {
		return &ScriptError{Script: st.gen.ep.Script, Msg: fmt.Sprintf("the script must return a table of handlers, got %s", ret.Type())}
	}
	st.handlers = make(map[eventKind]*lua.LFunction)
	for k, name := range eventNames {
		if k == int(evBarrier) {
			continue
		}
		switch v := tbl.RawGetString(name).(type) {
		case *lua.LFunction:
			st.handlers[eventKind(k)] = v
		case *lua.LNilType:
		default:
			return &ScriptError{Script: st.gen.ep.Script, Msg: fmt.Sprintf("handler %q must be a function, got %s", name, v.Type())}
		}
	}
	return nil
}

// run is the state's goroutine: once its generation is ready it serves
// events (suspend.go) until the generation is retired or the service stops,
// then finishes what it holds and closes the state.
func (st *state) run() {
	select {
	case <-st.gen.ready:
	case <-st.svc.ctx.Done(): // stopped before it ever served
	}
	st.serving = true
	st.serve()
}

// The kinds of message handed to the message handler, boxed once.
var (
	textKind   lua.LValue = lua.LString("text")
	binaryKind lua.LValue = lua.LString("binary")
)

// handle runs the handler for one event.
func (st *state) handle(ev event) {
	switch ev.kind {
	case evConnect:
		ev.reply <- st.connect(ev)
	case evMessage:
		st.inboxBytes.release(int64(len(ev.data)))
		kind := textKind
		if ev.op == ws.OpBinary {
			kind = binaryKind
		}
		st.callHandler(ev, 0, st.clientValue(ev.c), lua.LString(ev.data), kind) //nolint:errcheck // reported
	case evClose:
		st.callHandler(ev, 0, st.clientValue(ev.c), lua.LNumber(ev.how.Code), lua.LString(ev.how.Reason)) //nolint:errcheck // reported
		st.forget(ev.c)
	case evTimer:
		st.runNamed(ev)
	case evBarrier:
		if probe, ok := ev.value.(func(*state)); ok { // Idle's (idle.go)
			probe(st)
		}
		close(ev.reply)
	case evHTTP:
		st.serveHTTP(ev.http)
	case evGone:
		m := ev.value.(hub.Member)
		st.callHandler(ev, 0, st.memberValue(m), lua.LNumber(ws.StatusAbnormalClosure), lua.LString("its node is gone")) //nolint:errcheck // reported
		close(ev.reply)
	}
}

// connect runs the connect handler, which accepts by returning nothing (or
// true) and refuses with `return false, status, reason`.
func (st *state) connect(ev event) error {
	fn := st.handlers[evConnect]
	if fn == nil {
		return nil
	}
	rets, err := st.callHandler(ev, 3, st.clientValue(ev.c), st.requestTable(ev.c))
	if err != nil {
		st.forget(ev.c)
		return refusal(http.StatusInternalServerError, "internal error")
	}
	ok, status, reason := rets[0], rets[1], rets[2]
	if ok == lua.LNil || lua.LVAsBool(ok) {
		return nil
	}
	st.forget(ev.c)
	code, _ := status.(lua.LNumber)
	return refusal(int(code), lua.LVAsString(reason))
}

// forget drops what the service holds for a client that is gone.
func (st *state) forget(c *client.Client) {
	if st.svc.cluster != nil {
		st.await(func() { st.svc.removeClient(c) })
	} else {
		st.svc.hub.Remove(c)
	}
	st.releaseOwner(c)
	delete(st.clients, c)
}

// callHandler calls the script's handler for ev (if it has one) with args,
// returning its first nret results. Errors are logged and counted.
func (st *state) callHandler(ev event, nret int, args ...lua.LValue) ([]lua.LValue, error) {
	return st.invoke(ev.kind, ev.c, st.handlers[ev.kind], nret, args...)
}

// invoke calls fn as a handler of the given kind, about client c (or nil),
// on a runner of its own (so that it may be suspended, see suspend.go),
// timing it and logging and counting its error. A nil fn returns nret nils.
func (st *state) invoke(kind eventKind, c *client.Client, fn *lua.LFunction, nret int, args ...lua.LValue) ([]lua.LValue, error) {
	var rets []lua.LValue
	if nret > 0 {
		rets = make([]lua.LValue, nret)
		for i := range rets {
			rets[i] = lua.LNil
		}
	}
	if fn == nil {
		return rets, nil
	}
	begin := time.Now()
	r := st.takeRunner(c)
	prev := st.cur
	st.cur = r
	err := st.protectedCall(r, fn, nret, args...)
	st.giveUpReserved(r)
	st.cur = prev
	if err == nil {
		for i := range rets {
			rets[i] = r.L.Get(i - nret)
		}
	}
	st.putRunner(r)
	st.durations[kind].Observe(time.Since(begin).Seconds())
	if err != nil {
		st.report(eventNames[kind], c, err)
	}
	return rets, err
}

// protectedCall calls fn on r under the budget, converting any error (a
// raised error, a budget overrun) to a *ScriptError.
func (st *state) protectedCall(r *runner, fn *lua.LFunction, nret int, args ...lua.LValue) error {
	r.used = 0
	st.beginSlice(r)
	err := r.L.CallByParam(lua.P{Fn: fn, NRet: nret, Protect: true}, args...)
	st.endSlice()
	if r.L.Context().Err() != nil {
		r.resetContext(&st.runMu)
		if err != nil {
			se := runtimeError(st.gen.ep.Script, err)
			se.Msg = fmt.Sprintf("handler stopped: it ran past its budget of %s", st.gen.budget())
			if st.stopReason.Swap(0) == stoppedForMemory {
				se.Msg = fmt.Sprintf("handler stopped: it grew the heap by more than %d MiB (handler_memory)", st.gen.ep.HandlerMemory>>20)
			}
			return se
		}
	}
	if err != nil {
		return runtimeError(st.gen.ep.Script, err)
	}
	return nil
}

// report logs and counts a script error.
func (st *state) report(handler string, c *client.Client, err error) {
	st.svc.metrics.ScriptErrors.Inc()
	attrs := []any{"handler", handler, "state", st.index, "err", err.Error()}
	if c != nil {
		attrs = append(attrs, "client", c.ID())
	}
	if se, ok := err.(*ScriptError); ok && se.Traceback != "" {
		attrs = append(attrs, "traceback", se.Traceback)
	}
	st.svc.log.Error("script error", attrs...)
}

// Why the watchdog stopped a handler.
const (
	stoppedForTime int32 = iota + 1
	stoppedForMemory
)

// interruptIfOver cancels the running call if it has used more than budget
// of CPU time, or if the heap grew by more than memLimit, since the
// watchdog first saw it running (a call is charged from then: at most one
// tick of the watchdog goes uncounted). It is called by the watchdog
// goroutine only, which alone touches seenCall, heapBase and cpuBase.
func (st *state) interruptIfOver(budget time.Duration, heap, memLimit uint64) {
	call := st.running.Load()
	if call == 0 {
		return
	}
	clock := threadClock(st.runningClock.Load())
	if call != st.seenCall {
		st.seenCall, st.heapBase, st.cpuBase = call, heap, clock.now()
		st.sliceBase.Store(int64(st.cpuBase))
		st.sliceSeen.Store(call)
		return
	}
	var reason int32
	switch {
	case time.Duration(st.charged.Load())+clock.now()-st.cpuBase >= budget:
		reason = stoppedForTime
	case memLimit > 0 && heap > st.heapBase+memLimit:
		reason = stoppedForMemory
	default:
		return
	}
	st.runMu.Lock()
	defer st.runMu.Unlock()
	if r := st.current.Load(); st.running.Load() == call && r != nil {
		st.stopReason.Store(reason)
		r.cancel()
	}
}

// releaseOwner removes the store keys bound to c's life. In a cluster
// that is a call to Redis: made with the handler suspended when one is
// running, else (a close event) on the state, bounded by
// cluster.CallTimeout; a failure is logged (the keys then stay until
// their expiry).
func (st *state) releaseOwner(c *client.Client) {
	if st.svc.cluster == nil {
		st.svc.store.ReleaseOwner(c.ID())
		return
	}
	var err error
	st.await(func() {
		ctx, cancel := context.WithTimeout(st.svc.ctx, cluster.CallTimeout)
		defer cancel()
		_, err = st.svc.kv.ReleaseOwner(ctx, c.ID())
	})
	if err != nil {
		st.svc.log.Warn("store: keys bound to a client not released", "client", c.ID(), "err", err)
	}
}
