package scripting

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Idle returns once the service is quiescent: every state of the current
// version has an empty inbox, no handler running or suspended on a call,
// no event held back behind a suspended handler, and no fired timer
// waiting to run. It finds out with a barrier through every state, again
// until one round finds them all quiet, so that work one state's handler
// caused in another (a suspended handler resuming, a timer firing) is
// waited for too. It does not wait for pending timers that are not due,
// nor for what clients have yet to send. `moongate test` calls it before
// checking an expectation or advancing its virtual clock. It returns
// ctx's error when ctx ends first.
func (s *Service) Idle(ctx context.Context) error {
	pause := 50 * time.Microsecond
	for {
		quiet, err := s.probe(ctx)
		if err != nil || quiet {
			return err
		}
		select { // something was under way: let it run, then look again
		case <-time.After(pause):
		case <-ctx.Done():
			return fmt.Errorf("waiting for the service to be idle: %w", ctx.Err())
		}
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// probe sends one barrier through every state of the current version and
// reports whether each found its state quiet as it passed.
func (s *Service) probe(ctx context.Context) (bool, error) {
	var busy atomic.Bool
	check := func(st *state) {
		if !st.quiet() {
			busy.Store(true)
		}
	}
	s.mu.RLock()
	states := s.gen.states
	replies := make([]chan error, 0, len(states))
	for _, st := range states {
		reply := make(chan error)
		if !s.put(st, event{kind: evBarrier, value: check, reply: reply}, true, ctx.Done()) {
			s.mu.RUnlock()
			return false, fmt.Errorf("waiting for the service to be idle: %w", context.Cause(orStopped(ctx, s.ctx)))
		}
		replies = append(replies, reply)
	}
	s.mu.RUnlock()
	for _, reply := range replies {
		select {
		case <-reply:
		case <-ctx.Done():
			return false, fmt.Errorf("waiting for the service to be idle: %w", ctx.Err())
		case <-s.ctx.Done():
			return false, fmt.Errorf("waiting for the service to be idle: the service stopped")
		}
	}
	return !busy.Load(), nil
}

// orStopped returns whichever of ctx and svc has ended (ctx if both).
func orStopped(ctx, svc context.Context) context.Context {
	if ctx.Err() != nil {
		return ctx
	}
	return svc
}

// quiet reports, on the state's goroutine (the baton holder), whether the
// state has nothing to do: the barrier being handled aside, no event
// queued, none held back, no handler suspended or resuming, no fired timer.
func (st *state) quiet() bool {
	if len(st.inbox) > 0 || st.waiting > 0 || st.deferred > 0 || len(st.resumed) > 0 {
		return false
	}
	st.timers.mu.Lock()
	defer st.timers.mu.Unlock()
	return len(st.timers.fired) == 0
}
