package load

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Load is a load whose connections are open, ready to run rounds.
type Load interface {
	// Run applies the load for d, waits for what is still in flight, and
	// adds what it measured to the load's totals.
	Run(ctx context.Context, d time.Duration)
	// Result returns the totals of every round so far.
	Result() Result
	// Stats returns the running counters (for progress reports).
	Stats() *Stats
	// Close closes the load's connections.
	Close()
}

// RunRounds runs each load for total/rounds at a time, in turn (A B A B …),
// so that whatever else the machine does hits every load alike. progress,
// if not nil, receives a line every interval while a round runs.
func RunRounds(ctx context.Context, loads []Load, names []string, total time.Duration, rounds int, progress io.Writer) {
	rounds = max(rounds, 1)
	per := total / time.Duration(rounds)
	for round := range rounds {
		for i, l := range loads {
			if ctx.Err() != nil {
				return
			}
			stop := reportProgress(progress, fmt.Sprintf("round %d/%d %s", round+1, rounds, names[i]), l.Stats())
			l.Run(ctx, per)
			stop()
		}
	}
}

// reportProgress prints the received count every two seconds until stopped.
func reportProgress(w io.Writer, label string, s *Stats) (stop func()) {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		start, last := time.Now(), s.Received.Load()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				n := s.Received.Load()
				fmt.Fprintf(w, "  %s %4.0fs: %d received (%.0f/s), %d errors\n", label, now.Sub(start).Seconds(), n, float64(n-last)/2, s.Errors.Load())
				last = n
			}
		}
	}()
	return func() { close(done) }
}
