package load

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// IdleConfig is an idle load: connections that are opened and then only
// held, answering the server's pings.
type IdleConfig struct {
	URL      string
	Conns    int
	Parallel int
	// PID is the server's process id; when set, its resident memory is
	// read before dialing and once every connection is open.
	PID      int
	Progress func(open int)
}

// Idle is an idle load with its connections open.
type Idle struct {
	cfg     IdleConfig
	conns   []*Conn
	stats   *Stats
	before  int64
	after   int64
	closing atomic.Bool
	readers sync.WaitGroup
}

// NewIdle reads the server's memory, opens every connection and reads the
// server's memory again.
func NewIdle(ctx context.Context, d *Dialer, cfg IdleConfig) (*Idle, error) {
	l := &Idle{cfg: cfg, stats: newStats()}
	var err error
	if cfg.PID > 0 {
		if l.before, err = RSS(cfg.PID); err != nil {
			return nil, err
		}
	}
	conns, err := DialAll(ctx, d, cfg.Conns, max(cfg.Parallel, 1), func(int) string { return cfg.URL }, nil, cfg.Progress)
	if err != nil {
		return nil, err
	}
	l.conns = conns
	for _, c := range conns {
		l.readers.Add(1)
		go func() {
			defer l.readers.Done()
			for {
				if _, err := c.Read(); err != nil {
					if !l.closing.Load() {
						l.stats.Errors.Add(1)
					}
					return
				}
			}
		}()
	}
	return l, nil
}

// Run holds the connections for d (time for the server to settle), then
// reads the server's memory.
func (l *Idle) Run(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
	l.stats.elapsed.Add(int64(d))
	if l.cfg.PID > 0 {
		if rss, err := RSS(l.cfg.PID); err == nil {
			l.after = rss
		}
	}
}

// Stats returns the running counters.
func (l *Idle) Stats() *Stats { return l.stats }

// Result returns the memory figures.
func (l *Idle) Result() Result {
	r := l.stats.result("idle", l.cfg.URL, len(l.conns))
	r.RSSBefore, r.RSSAfter = l.before, l.after
	if l.after > 0 && len(l.conns) > 0 {
		r.RSSPerConn = float64(l.after-l.before) / float64(len(l.conns))
	}
	return r
}

// Close closes every connection.
func (l *Idle) Close() {
	l.closing.Store(true)
	CloseAll(l.conns)
	l.readers.Wait()
}

// RSS returns the resident memory of process pid, in bytes.
func RSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read server memory: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read server memory: %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("read server memory: no VmRSS in /proc/%d/status", pid)
}
