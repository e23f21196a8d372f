package load

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// EchoConfig is an echo load: every connection sends messages and reads
// them back.
type EchoConfig struct {
	URL      string
	Conns    int
	Size     int     // message bytes (at least 16: the send-time stamp)
	InFlight int     // messages sent and not yet echoed, per connection
	Rate     float64 // messages per second over all connections; 0: as fast as the server answers
	Parallel int     // connections dialed at once
	// Drain is how long a round waits for answers still in flight before
	// counting them lost; 0: 5 s.
	Drain time.Duration
}

// defaultDrain is how long a round waits for answers still in flight.
const defaultDrain = 5 * time.Second

// Echo is an echo load with its connections open.
type Echo struct {
	cfg   EchoConfig
	conns []*Conn
	stats *Stats
}

// NewEcho opens cfg.Conns connections to cfg.URL.
func NewEcho(ctx context.Context, d *Dialer, cfg EchoConfig) (*Echo, error) {
	cfg.InFlight = max(cfg.InFlight, 1)
	cfg.Size = max(cfg.Size, stampLen)
	if cfg.Drain <= 0 {
		cfg.Drain = defaultDrain
	}
	conns, err := DialAll(ctx, d, cfg.Conns, max(cfg.Parallel, 1), func(int) string { return cfg.URL }, nil, nil)
	if err != nil {
		return nil, err
	}
	return &Echo{cfg: cfg, conns: conns, stats: newStats()}, nil
}

// Stats returns the running counters.
func (e *Echo) Stats() *Stats { return e.stats }

// Result returns the totals of every round so far.
func (e *Echo) Result() Result { return e.stats.result("echo", e.cfg.URL, e.cfg.Conns) }

// Close closes every connection.
func (e *Echo) Close() { CloseAll(e.conns) }

// Run sends for d on every connection, then waits for the echoes.
func (e *Echo) Run(ctx context.Context, d time.Duration) {
	deadline := time.Now().Add(d)
	perConn := e.cfg.Rate / float64(len(e.conns))
	var wg sync.WaitGroup
	for i, c := range e.conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			phase := float64(i) / float64(len(e.conns))
			inStep := false
			if e.cfg.Rate > 0 {
				inStep = e.runConn(ctx, i, c, deadline, newPacer(perConn, phase))
			} else {
				inStep = e.runClosedLoop(ctx, i, c, deadline)
			}
			if !inStep {
				c.Close() // out of step: its late echoes would spoil later rounds
				e.conns[i] = nil
			}
		}()
	}
	wg.Wait()
	e.stats.elapsed.Add(int64(d))
}

// runClosedLoop runs one connection's round without a rate: it sends
// InFlight messages, then one more for each echo, until the deadline, then
// reads what is still in flight. One goroutine does it all, so the load
// tool spends as little as it can per message. It reports whether the
// connection is still in step (everything sent came back).
func (e *Echo) runClosedLoop(ctx context.Context, i int, c *Conn, deadline time.Time) bool {
	c.SetReadDeadline(time.Now().Add(time.Until(deadline) + e.cfg.Drain))
	msg := newPayload(e.cfg.Size)
	send := func() bool {
		putStamp(msg, time.Now())
		if err := c.WriteText(msg); err != nil {
			e.stats.Errors.Add(1)
			return false
		}
		e.stats.Sent.Add(1)
		return true
	}
	inFlight := 0
	for ; inFlight < e.cfg.InFlight && send(); inFlight++ {
	}
	for inFlight > 0 {
		p, err := c.Read()
		if err != nil {
			if time.Now().Before(deadline) {
				e.stats.Errors.Add(1)
			}
			e.stats.Lost.Add(int64(inFlight))
			return false
		}
		if t, ok := readStamp(p); ok {
			e.stats.Hist.Record(i, time.Since(t))
		}
		e.stats.Received.Add(1)
		inFlight--
		if time.Now().Before(deadline) && ctx.Err() == nil && send() {
			inFlight++
		}
	}
	return true
}

// runConn runs one connection's round at a rate and reports whether the
// connection is still in step (everything sent came back).
func (e *Echo) runConn(ctx context.Context, i int, c *Conn, deadline time.Time, pace *pacer) bool {
	c.SetReadDeadline(time.Time{})
	var (
		tokens     = make(chan struct{}, e.cfg.InFlight)
		sent, recv atomic.Int64
		senderDone atomic.Bool
		readerGone = make(chan struct{})
	)
	go func() {
		defer close(readerGone)
		e.receive(i, c, tokens, &sent, &recv, &senderDone)
	}()
	msg := newPayload(e.cfg.Size)
send:
	for time.Now().Before(deadline) && ctx.Err() == nil {
		due := pace.wait()
		select {
		case tokens <- struct{}{}:
		case <-readerGone:
			break send
		case <-ctx.Done():
			break send
		}
		putStamp(msg, due)
		if err := c.WriteText(msg); err != nil {
			e.stats.Errors.Add(1)
			break
		}
		sent.Add(1)
		e.stats.Sent.Add(1)
	}
	senderDone.Store(true)
	if recv.Load() == sent.Load() {
		c.SetReadDeadline(time.Now()) // wake the reader: nothing more is coming
	} else {
		c.SetReadDeadline(time.Now().Add(e.cfg.Drain))
	}
	<-readerGone
	lost := sent.Load() - recv.Load()
	e.stats.Lost.Add(lost)
	return lost == 0
}

// receive reads echoes, recording each one's latency, until everything
// sent has come back after the sender stopped.
func (e *Echo) receive(i int, c *Conn, tokens chan struct{}, sent, recv *atomic.Int64, senderDone *atomic.Bool) {
	for !(senderDone.Load() && recv.Load() == sent.Load()) {
		p, err := c.Read()
		if err != nil {
			if !senderDone.Load() { // after it, a timeout only means loss
				e.stats.Errors.Add(1)
			}
			return
		}
		if t, ok := readStamp(p); ok {
			e.stats.Hist.Record(i, time.Since(t))
		}
		recv.Add(1)
		e.stats.Received.Add(1)
		<-tokens
	}
}
