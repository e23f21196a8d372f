package scripting

import "time"

// Clock is the time a service's scripts see: the `clock` module, closure
// and named timers, and the expiry of store keys. The real clock is the
// default; `moongate test` lends a virtual one (WithClock) whose time moves
// only when a test advances it, so that a test can fire a timer or expire a
// rate limit without waiting. Budgets and metrics always use real time.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f on a goroutine of its own once d has passed, as
	// time.AfterFunc does.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending call made by Clock.AfterFunc; *time.Timer is one.
type Timer interface {
	// Stop cancels the call, reporting whether it was still pending.
	Stop() bool
	// Reset makes the call happen d from now (again, once it has happened),
	// reporting whether it was still pending.
	Reset(d time.Duration) bool
}

// RealClock is the wall clock: time.Now and time.AfterFunc.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// AfterFunc returns time.AfterFunc(d, f).
func (RealClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// WithClock makes the service's scripts see c's time (clock, timer, store
// expiries) instead of the wall clock's.
func WithClock(c Clock) Option {
	return func(s *Service) {
		if c != nil {
			s.clock = c
		}
	}
}
