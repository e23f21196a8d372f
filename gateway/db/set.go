package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Set is the gateway's open databases by name. Services look a database up
// at each call ([Set.Get], which takes no lock), so a config reload can
// replace a pool under them ([Set.Apply]): a statement already running
// finishes on the pool it started on.
type Set struct {
	log *slog.Logger
	dbs atomic.Pointer[map[string]*member] // read without a lock; replaced whole

	mu      sync.Mutex     // serializes Apply and Close
	closed  bool           // Close was called
	closing sync.WaitGroup // probes, and pools replaced or removed still closing
}

// member is one open database of a Set.
type member struct {
	cfg       Config
	db        DB
	stopProbe context.CancelFunc // ends the reachability check of a PostgreSQL pool
}

// NewSet returns an empty set that logs to log.
func NewSet(log *slog.Logger) *Set {
	s := &Set{log: log}
	s.dbs.Store(&map[string]*member{})
	return s
}

// Get returns the database configured under name. It takes no lock.
func (s *Set) Get(name string) (DB, bool) {
	m := (*s.dbs.Load())[name]
	if m == nil {
		return nil, false
	}
	return m.db, true
}

// Names returns the names of the open databases, sorted.
func (s *Set) Names() []string {
	return slices.Sorted(maps.Keys(*s.dbs.Load()))
}

// Apply makes the set hold exactly the databases cfgs describe: a database
// whose Config did not change keeps its pool; one that is new or changed
// is opened; then the set switches to the new pools at once, and the pools
// replaced or removed are closed (on their own goroutines: a statement
// running on them finishes first). When any database fails to open — an
// unknown driver, a malformed DSN, a SQLite file that cannot be created —
// nothing changes: the pools opened for this call are closed, and the
// error names the database. A PostgreSQL server that cannot be reached is
// not such a failure: its pool connects on each call until the server is
// back, and Apply logs one warning for it.
func (s *Set) Apply(ctx context.Context, cfgs []Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("databases: the set is closed")
	}
	seen := make(map[string]bool, len(cfgs))
	for _, c := range cfgs {
		if seen[c.Name] {
			return fmt.Errorf("database %q is configured twice", c.Name)
		}
		seen[c.Name] = true
	}
	old := *s.dbs.Load()
	next := make(map[string]*member, len(cfgs))
	var opened []*member
	for _, c := range cfgs {
		if m := old[c.Name]; m != nil && m.cfg == c {
			next[c.Name] = m
			continue
		}
		d, err := Open(ctx, c)
		if err != nil {
			for _, m := range opened {
				m.db.Close()
			}
			var dbErr *Error
			if !errors.As(err, &dbErr) {
				err = fmt.Errorf("database %q: %w", c.Name, err)
			}
			return err
		}
		m := &member{cfg: c, db: d, stopProbe: func() {}}
		opened = append(opened, m)
		next[c.Name] = m
	}
	s.dbs.Store(&next)
	for _, m := range opened {
		if m.cfg.Driver == "postgres" {
			s.probe(m)
		}
	}
	for name, m := range old {
		if next[name] != m {
			s.retire(m)
		}
	}
	if len(opened) > 0 || len(old) != len(next) {
		s.log.Info("databases", "open", slices.Sorted(maps.Keys(next)), "opened", names(opened))
	}
	return nil
}

// names returns the names of ms, sorted.
func names(ms []*member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.cfg.Name
	}
	slices.Sort(out)
	return out
}

// probe checks, on its own goroutine, that a PostgreSQL pool just opened
// can reach its server, and logs one warning when it cannot. It ends
// within the database's timeout, or when the pool is retired.
func (s *Set) probe(m *member) {
	ctx, cancel := context.WithCancel(context.Background())
	m.stopProbe = cancel
	s.closing.Add(1)
	go func() {
		defer s.closing.Done()
		defer cancel()
		if _, err := m.db.Query(ctx, "SELECT 1"); err != nil && ctx.Err() == nil {
			s.log.Warn("database unreachable: its pool will connect again on each call until it is back",
				"database", m.cfg.Name, "err", err.Error())
			return
		}
		s.log.Debug("database reachable", "database", m.cfg.Name)
	}()
}

// retire closes a pool the set no longer holds, on its own goroutine.
func (s *Set) retire(m *member) {
	m.stopProbe()
	s.closing.Add(1)
	go func() {
		defer s.closing.Done()
		if err := m.db.Close(); err != nil {
			s.log.Warn("closing a database replaced or removed", "database", m.cfg.Name, "err", err.Error())
		}
	}()
}

// Close closes every database of the set, and waits for those that Apply
// replaced or removed to finish closing. The set is empty afterwards, and
// Apply refuses to reopen it.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	old := *s.dbs.Swap(&map[string]*member{})
	var errs []error
	for _, m := range old {
		m.stopProbe()
		errs = append(errs, m.db.Close())
	}
	s.closing.Wait()
	return errors.Join(errs...)
}
