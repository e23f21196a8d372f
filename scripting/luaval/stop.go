package luaval

import "context"

// stepsPerCheck is how many steps a Stopper counts between two looks at
// its context.
const stepsPerCheck = 1024

// Stopper lets a long loop in Go (a conversion, a pattern match) notice
// that the context of the handler it runs for has ended: gopher-lua looks
// at the context only between two instructions of the script.
type Stopper struct {
	ctx   context.Context
	done  <-chan struct{}
	steps int
}

// NewStopper returns a Stopper for ctx; a nil ctx never stops.
func NewStopper(ctx context.Context) Stopper {
	s := Stopper{ctx: ctx}
	if ctx != nil {
		s.done = ctx.Done()
	}
	return s
}

// Step counts one step and returns the context's error once it has ended.
func (s *Stopper) Step() error {
	s.steps++
	if s.steps%stepsPerCheck != 0 || s.done == nil {
		return nil
	}
	select {
	case <-s.done:
		return s.ctx.Err()
	default:
		return nil
	}
}
