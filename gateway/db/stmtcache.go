package db

import (
	"container/list"
	"context"
	"database/sql"
	"strings"
	"sync"
	"unicode"
)

// MaxCachedStatements bounds each SQLite statement cache: a database keeps
// at most this many prepared statements for its writer connection and as
// many for its read-only connections (each prepared on every read-only
// connection that ran it), keyed by SQL text. Past the bound the least
// recently used statement is closed (once no call is using it).
const MaxCachedStatements = 64

// stmtCache keeps the prepared statements of one *sql.DB, at most max,
// the least recently used evicted first. A statement handed out is
// counted, and closed only when evicted and no longer in use.
type stmtCache struct {
	db      *sql.DB
	max     int
	mu      sync.Mutex
	lru     list.List // of *cachedStmt, the most recently used in front
	byQuery map[string]*list.Element
	closed  bool
}

// cachedStmt is one prepared statement and its users.
type cachedStmt struct {
	query   string
	st      *sql.Stmt
	refs    int  // calls using it; guarded by the cache's mu
	evicted bool // out of the cache: closed when refs drops to 0
}

func newStmtCache(db *sql.DB, max int) *stmtCache {
	return &stmtCache{db: db, max: max, byQuery: make(map[string]*list.Element)}
}

// lookup returns the cached statement for q, counted as in use, or nil
// when there is none (it prepares nothing).
func (c *stmtCache) lookup(q string) *cachedStmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byQuery[q]; ok {
		c.lru.MoveToFront(e)
		s := e.Value.(*cachedStmt)
		s.refs++
		return s
	}
	return nil
}

// get returns the statement for q, counted as in use, preparing it (on a
// connection of the pool, waiting for one within ctx) when it is not
// cached. The caller must release it.
func (c *stmtCache) get(ctx context.Context, q string) (*cachedStmt, error) {
	if s := c.lookup(q); s != nil {
		return s, nil
	}
	st, err := c.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	s := &cachedStmt{query: q, st: st, refs: 1}
	var evicted []*sql.Stmt
	c.mu.Lock()
	switch e, ok := c.byQuery[q]; {
	case c.closed:
		c.mu.Unlock()
		st.Close()
		return nil, errClosed
	case ok:
		// Prepared meanwhile by another call: use that one.
		c.lru.MoveToFront(e)
		s = e.Value.(*cachedStmt)
		s.refs++
		evicted = append(evicted, st)
	default:
		c.byQuery[q] = c.lru.PushFront(s)
		for c.lru.Len() > c.max {
			old := c.lru.Remove(c.lru.Back()).(*cachedStmt)
			delete(c.byQuery, old.query)
			old.evicted = true
			if old.refs == 0 {
				evicted = append(evicted, old.st)
			}
		}
	}
	c.mu.Unlock()
	for _, st := range evicted {
		st.Close()
	}
	return s, nil
}

// release ends one use of s, closing it if it was evicted meanwhile and
// this was the last use.
func (c *stmtCache) release(s *cachedStmt) {
	c.mu.Lock()
	s.refs--
	last := s.evicted && s.refs == 0
	c.mu.Unlock()
	if last {
		s.st.Close()
	}
}

// len is the number of statements cached.
func (c *stmtCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// close evicts every statement (those in use are closed when released)
// and makes get fail from now on.
func (c *stmtCache) close() {
	c.mu.Lock()
	c.closed = true
	var idle []*sql.Stmt
	for e := c.lru.Front(); e != nil; e = e.Next() {
		s := e.Value.(*cachedStmt)
		s.evicted = true
		if s.refs == 0 {
			idle = append(idle, s.st)
		}
	}
	c.lru.Init()
	clear(c.byQuery)
	c.mu.Unlock()
	for _, st := range idle {
		st.Close()
	}
}

// singleStatement reports whether q holds one statement: no semicolon but
// a trailing one. A semicolon in a string literal or a comment counts too
// (such a statement is then treated as a script: not cached, not batched).
func singleStatement(q string) bool {
	q = strings.TrimRightFunc(q, unicode.IsSpace)
	q = strings.TrimSuffix(q, ";")
	return !strings.Contains(q, ";")
}
