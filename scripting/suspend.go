package scripting

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/moongate/moongate/gateway/client"
	lua "github.com/yuin/gopher-lua"
)

// Suspended handlers.
//
// A call that waits (a database statement, an HTTP request) suspends the
// handler that made it, never its state: the state goes on serving other
// clients' events, and the handler resumes on the state when the result is
// in, with its Lua stack, its pcalls and its coroutines as they were.
//
// gopher-lua cannot yield across a Go function or a pcall, so a handler is
// not suspended by yielding. Each handler runs on a Lua thread of its own
// (a runner) and on a goroutine whose Go stack keeps its place; what moves
// is the right to run the state, a baton held by one goroutine at a time.
// The holder runs the event loop (serve). A handler that waits hands the
// baton to a new goroutine that takes over the loop, does its waiting
// without it, and, once done, queues itself on resumed; the loop hands it
// the baton back and that goroutine leaves (its loop carries on in the
// resumed handler's goroutine when the handler returns). One goroutine
// runs Lua in a state at any moment, and every hand-over is a channel
// operation: no lock is held around a Lua state.
//
// Order per client holds as before: while a client's handler is
// suspended, that client's later events (messages, a barrier, its close)
// wait in busy, and run, in order, when the handler has finished.
//
// Bounds (docs/lua-api.md, "Calls that wait"): at most maxSuspended
// handlers of a state wait at once, and at most cap(inbox) events wait
// behind them; when either is full the state takes no new events (a
// client's reader then waits on the inbox, so TCP pushes back) until a
// handler finishes.

// maxSuspended bounds the handlers of one state waiting on calls at once
// (read when a state is made: the capacity of its resumed queue).
var maxSuspended = 1024

// runner is a Lua thread a handler runs on, and the handler's place while
// it is suspended. A state's first runner is its main thread; more are made
// when handlers wait, and kept for reuse.
type runner struct {
	L      *lua.LState
	cancel context.CancelFunc // cancels L's context: the budget's way to stop the handler; guarded by the state's runMu
	client *client.Client     // whose event the handler handles; nil for a timer
	used   time.Duration      // CPU time the handler used in the slices before this one
	baton  chan struct{}      // the state handed back, when the call it waited on is done
	// reserved are the room numbers the handler reserved and has not
	// published yet (reservations.go).
	reserved []reservation
}

// newRunner returns a runner on L with a fresh context.
func newRunner(L *lua.LState) *runner {
	r := &runner{L: L, baton: make(chan struct{})}
	r.resetContext(nil)
	return r
}

// resetContext gives the runner a fresh context, after the budget
// cancelled the one it had; mu (the state's runMu, nil while no watchdog
// can see the runner) guards r.cancel against the watchdog.
func (r *runner) resetContext(mu sync.Locker) {
	ctx, cancel := context.WithCancel(context.Background())
	if mu != nil {
		mu.Lock()
		defer mu.Unlock()
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.cancel = cancel
	r.L.SetContext(ctx)
}

// takeRunner returns a free runner for a handler about client c.
func (st *state) takeRunner(c *client.Client) *runner {
	var r *runner
	if n := len(st.free); n > 0 {
		r, st.free = st.free[n-1], st.free[:n-1]
	} else {
		th, _ := st.L.NewThread()
		r = newRunner(th)
	}
	r.client, r.used = c, 0
	return r
}

// putRunner gives a runner back once its handler has returned.
func (st *state) putRunner(r *runner) {
	r.client = nil
	r.L.SetTop(0)
	st.free = append(st.free, r)
}

// serve is the state's event loop, run by whichever goroutine holds the
// baton. It returns when that goroutine hands the baton to a resumed
// handler, or when the state has closed.
func (st *state) serve() {
	for {
		if st.draining && st.idle() {
			st.close()
			return
		}
		var inbox <-chan event
		var fired <-chan struct{}
		var retired <-chan struct{}
		if st.waiting < cap(st.resumed) && st.deferred < cap(st.inbox) {
			inbox = st.inbox
			if !st.draining {
				fired = st.timers.ready
			}
		}
		if !st.draining {
			retired = st.gen.ctx.Done()
		}
		select { // a handler whose call is done goes first: it may hold a database's writer
		case r := <-st.resumed:
			r.baton <- struct{}{}
			return
		default:
		}
		select {
		case r := <-st.resumed:
			r.baton <- struct{}{}
			return
		case ev := <-inbox:
			st.dispatch(ev)
		case <-fired:
			st.runFired()
		case <-retired:
			st.draining = true
		}
	}
}

// idle reports whether a retired state has nothing left to do: no event
// queued, none waiting behind a handler, no handler suspended.
func (st *state) idle() bool {
	return len(st.inbox) == 0 && st.waiting == 0 && st.deferred == 0
}

// close stops the state's timers, closes its Lua state and reports it done
// to its generation.
func (st *state) close() {
	st.timers.stopAll()
	st.L.Close()
	st.gen.done.Done()
}

// dispatch handles ev now, or, when a handler of its client is suspended,
// queues it to run after that handler.
func (st *state) dispatch(ev event) {
	if ev.c != nil && len(st.busy) > 0 {
		if q, ok := st.busy[ev.c]; ok {
			st.busy[ev.c] = append(q, ev)
			st.deferred++
			return
		}
	}
	st.handle(ev)
	if ev.c != nil && len(st.busy) > 0 {
		st.runDeferred(ev.c)
	}
}

// runDeferred is called when a handler about c has returned: it handles
// the events that waited behind it, in order, until none is left. If one of
// them suspends in turn, the rest go on waiting behind it: this goroutine
// then carries on here once that handler has returned.
func (st *state) runDeferred(c *client.Client) {
	for {
		q, ok := st.busy[c]
		if !ok {
			return
		}
		if len(q) == 0 {
			delete(st.busy, c)
			return
		}
		ev := q[0]
		q[0] = event{}
		st.busy[c] = q[1:]
		st.deferred--
		st.handle(ev)
	}
}

// await runs wait, a call that blocks (a database statement, an HTTP
// request), for the handler running now, suspended (see suspend) while it
// waits.
func (st *state) await(wait func()) {
	r := st.suspend()
	wait()
	st.reclaim(r)
}

// suspend suspends the handler running now, handing the event loop to a
// new goroutine; the caller must not touch the state again before reclaim.
// The handler's budget does not run while it is suspended. It returns the
// handler's runner, for reclaim; or nil, suspending nothing, when the state
// does not serve yet (the script's top level, start): nothing else could
// be served then, and the caller simply blocks.
func (st *state) suspend() *runner {
	r := st.cur
	if !st.serving || r == nil {
		return nil
	}
	st.pause(r)
	st.cur = nil
	st.waiting++
	st.svc.metrics.Suspended.Inc()
	if _, ok := st.busy[r.client]; !ok && r.client != nil {
		st.busy[r.client] = nil // its next events wait for it
	}
	st.handOver()
	return r
}

// reclaim waits for the state to be handed back to r's handler, which
// suspend suspended, and resumes it. A nil r is a no-op.
func (st *state) reclaim(r *runner) {
	if r == nil {
		return
	}
	st.resumed <- r // room for every suspended handler: never blocks
	<-r.baton
	st.waiting--
	st.svc.metrics.Suspended.Dec()
	st.cur = r
	st.resume(r)
}

// handOver starts a goroutine that takes the event loop over from the
// caller, which must not touch the state again until it is handed back.
func (st *state) handOver() {
	st.svc.wg.Add(1)
	go func() {
		defer st.svc.wg.Done()
		st.serve()
	}()
}

// beginSlice starts charging the budget for r's handler, which runs on the
// calling goroutine, locked to its OS thread so that the thread's CPU
// clock measures it.
func (st *state) beginSlice(r *runner) {
	runtime.LockOSThread()
	st.calls++
	st.runningClock.Store(int32(currentThreadClock()))
	st.charged.Store(int64(r.used))
	st.current.Store(r)
	st.running.Store(st.calls)
}

// endSlice stops charging the budget.
func (st *state) endSlice() {
	st.running.Store(0)
	runtime.UnlockOSThread()
}

// pause ends the running slice of r's handler, which is about to wait,
// adding the CPU time of the slice (as the watchdog measured it) to r.used.
func (st *state) pause(r *runner) {
	if st.sliceSeen.Load() == st.calls {
		clock := threadClock(st.runningClock.Load())
		r.used += clock.now() - time.Duration(st.sliceBase.Load())
	}
	st.endSlice()
}

// resume starts a new slice of r's handler, which has waited.
func (st *state) resume(r *runner) {
	st.beginSlice(r)
}
