package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of SQLite's group commit.
const (
	// MaxGroupCommitQueue is how many Exec calls may wait for the
	// committer of one SQLite database. When it is full a caller waits
	// for room, within its context and the statement timeout, and fails
	// with the timeout's error if none comes.
	MaxGroupCommitQueue = 256
	// MaxGroupCommitBatch is the most statements committed together in
	// one transaction.
	MaxGroupCommitBatch = 64
)

// errClosed is the cause of a call to a database being closed.
var errClosed = errors.New("the database is closed")

// Request states: waiting in the queue, taken by the committer, or
// abandoned by its caller (whose context ended first).
const (
	reqWaiting int32 = iota
	reqTaken
	reqAbandoned
)

// execReq is one Exec handed to the committer.
type execReq struct {
	ctx   context.Context // the caller's, with the statement timeout
	stmt  *cachedStmt     // in use by the caller until it is answered
	args  []any
	state atomic.Int32
	// Set by the committer, read by the caller once done is closed.
	res  Result
	err  error
	done chan struct{}
	// The committer's own: it took the request (state reqTaken).
	taken bool
}

// answer gives r its outcome.
func (r *execReq) answer(res Result, err error) {
	r.res, r.err = res, err
	close(r.done)
}

// take marks r as the committer's, unless its caller abandoned it.
func (r *execReq) take() bool {
	if !r.taken {
		r.taken = r.state.CompareAndSwap(reqWaiting, reqTaken)
	}
	return r.taken
}

// committer runs the plain DML of concurrent Exec calls on a SQLite
// writer, several in one transaction when several wait: it takes the
// first request, and all others already queued up to
// MaxGroupCommitBatch, and never waits for more. A request that is alone
// runs as an autocommit statement, as without the committer. A batch runs
// in one transaction (BEGIN IMMEDIATE), each statement in a savepoint:
// a statement that fails is rolled back to its savepoint and its caller
// gets its error, the others go on. Callers are answered after COMMIT,
// each with its own Result; a failed COMMIT fails every statement of the
// batch. A request whose context has ended when its turn comes is
// answered with that error and not run.
type committer struct {
	db      *sqliteDB
	queue   chan *execReq
	stop    chan struct{} // closed by close
	closing sync.Once
	exited  chan struct{} // closed when run returns
	// hold, for tests, is called with the first request of each batch
	// before the others are gathered.
	hold func()

	savepoint, release, rollbackTo *sql.Stmt

	// Counted for tests and benchmarks: transactions committed by a
	// batch, and the statements they held.
	batches, batched atomic.Int64
}

func newCommitter(d *sqliteDB, hold func()) (*committer, error) {
	c := &committer{
		db:     d,
		queue:  make(chan *execReq, MaxGroupCommitQueue),
		stop:   make(chan struct{}),
		exited: make(chan struct{}),
		hold:   hold,
	}
	for q, st := range map[string]**sql.Stmt{
		"SAVEPOINT moongate_batch":   &c.savepoint,
		"RELEASE moongate_batch":     &c.release,
		"ROLLBACK TO moongate_batch": &c.rollbackTo,
	} {
		var err error
		if *st, err = d.writer.Prepare(q); err != nil {
			c.closeStmts()
			return nil, fmt.Errorf("prepare %s: %w", q, err)
		}
	}
	go c.run()
	return c, nil
}

func (c *committer) closeStmts() {
	for _, st := range []*sql.Stmt{c.savepoint, c.release, c.rollbackTo} {
		if st != nil {
			st.Close()
		}
	}
}

// close stops the committer: the batch running is let finish, requests
// still queued are answered with errClosed. It waits until run returns.
func (c *committer) close() {
	c.closing.Do(func() {
		close(c.stop)
		<-c.exited
		c.closeStmts()
	})
}

// exec hands st with args to the committer and waits for its answer,
// within ctx.
func (c *committer) exec(ctx context.Context, st *cachedStmt, args []any) (Result, error) {
	r := &execReq{ctx: ctx, stmt: st, args: args, done: make(chan struct{})}
	select {
	case <-c.stop:
		return Result{}, errClosed
	default:
	}
	select {
	case c.queue <- r:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-c.stop:
		return Result{}, errClosed
	}
	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqWaiting, reqAbandoned) {
			return Result{}, ctx.Err()
		}
		// Taken: its statement is running or waits for COMMIT, both
		// bounded; the committer answers every request it took.
		<-r.done
		return r.res, r.err
	case <-c.exited:
		if r.state.CompareAndSwap(reqWaiting, reqAbandoned) {
			return Result{}, errClosed
		}
		<-r.done
		return r.res, r.err
	}
}

func (c *committer) run() {
	defer close(c.exited)
	var batch, retry []*execReq
	for {
		batch = append(batch[:0], retry...)
		retry = nil
		if len(batch) == 0 {
			select {
			case r := <-c.queue:
				batch = append(batch, r)
			case <-c.stop:
				c.drain(nil)
				return
			}
		}
		if c.hold != nil {
			c.hold()
		}
		select {
		case <-c.stop:
			c.drain(batch)
			return
		default:
		}
	gather:
		for len(batch) < MaxGroupCommitBatch {
			select {
			case r := <-c.queue:
				batch = append(batch, r)
			default:
				break gather
			}
		}
		retry = c.runBatch(batch)
		clear(batch)
	}
}

// drain answers batch and every request queued with errClosed.
func (c *committer) drain(batch []*execReq) {
	for _, r := range batch {
		if r.take() {
			r.answer(Result{}, errClosed)
		}
	}
	for {
		select {
		case r := <-c.queue:
			if r.take() {
				r.answer(Result{}, errClosed)
			}
		default:
			return
		}
	}
}

// runBatch runs the requests of batch that are still wanted. It returns
// those it must run again: statements that had run when the transaction
// was rolled back by SQLite itself (an interrupted statement, after its
// caller's context ended, rolls back the whole transaction).
func (c *committer) runBatch(batch []*execReq) (retry []*execReq) {
	live := 0
	for _, r := range batch {
		switch {
		case r.taken:
			live++
		case r.state.Load() == reqWaiting:
			if err := ended(r.ctx); err != nil {
				if r.take() {
					r.answer(Result{}, err)
				}
				continue
			}
			live++
		}
	}
	switch live {
	case 0:
		return nil
	case 1:
		for _, r := range batch {
			if r.take() && !isDone(r) {
				r.answer(c.runAlone(r))
			}
		}
		return nil
	}
	// Wait for the writer connection while callers may still give up.
	cctx, cancel := context.WithTimeout(context.Background(), c.db.timeout)
	conn, err := c.db.writer.Conn(cctx)
	cancel()
	if err != nil {
		c.failAll(batch, wrap(c.db.name, "begin", cctx, err))
		return nil
	}
	defer conn.Close()
	// The transaction's context is not a caller's: one caller's going
	// must not roll back the others' statements.
	tx, err := conn.BeginTx(context.Background(), nil)
	if err != nil {
		c.failAll(batch, &Error{DB: c.db.name, Op: "begin", Err: err})
		return nil
	}
	bg := context.Background()
	sp, rel, rb := tx.StmtContext(bg, c.savepoint), tx.StmtContext(bg, c.release), tx.StmtContext(bg, c.rollbackTo)
	ran := make([]*execReq, 0, len(batch))
	results := make([]Result, 0, len(batch))
	for i, r := range batch {
		if !r.take() || isDone(r) {
			continue
		}
		if err := ended(r.ctx); err != nil {
			r.answer(Result{}, wrap(c.db.name, "exec", r.ctx, err))
			continue
		}
		if _, err := sp.ExecContext(bg); err != nil {
			// The transaction is unusable: fail what is left.
			tx.Rollback()
			c.failAll(batch[i:], &Error{DB: c.db.name, Op: "exec", Err: fmt.Errorf("savepoint: %w", err)})
			return ran
		}
		res, err := tx.StmtContext(bg, r.stmt.st).ExecContext(r.ctx, r.args...)
		if err != nil {
			r.answer(Result{}, wrap(c.db.name, "exec", r.ctx, err))
			_, rerr := rb.ExecContext(bg)
			if rerr == nil {
				_, rerr = rel.ExecContext(bg)
			}
			if rerr != nil {
				// SQLite ended the transaction (an interrupted statement
				// does): those that ran go again, with those not reached.
				tx.Rollback()
				return append(ran, batch[i+1:]...)
			}
			continue
		}
		if _, err := rel.ExecContext(bg); err != nil {
			tx.Rollback()
			c.failAll(batch[i:], &Error{DB: c.db.name, Op: "exec", Err: fmt.Errorf("release savepoint: %w", err)})
			return ran
		}
		var out Result
		out.RowsAffected, _ = res.RowsAffected()
		out.LastInsertID, _ = res.LastInsertId()
		ran = append(ran, r)
		results = append(results, out)
	}
	if err := tx.Commit(); err != nil {
		err = &Error{DB: c.db.name, Op: "commit", Err: err}
		for _, r := range ran {
			r.answer(Result{}, err)
		}
		return nil
	}
	c.batches.Add(1)
	c.batched.Add(int64(len(ran)))
	for i, r := range ran {
		r.answer(results[i], nil)
	}
	return nil
}

// runAlone runs r's statement in autocommit mode.
func (c *committer) runAlone(r *execReq) (Result, error) {
	res, err := r.stmt.st.ExecContext(r.ctx, r.args...)
	if err != nil {
		return Result{}, wrap(c.db.name, "exec", r.ctx, err)
	}
	var out Result
	out.RowsAffected, _ = res.RowsAffected()
	out.LastInsertID, _ = res.LastInsertId()
	return out, nil
}

// failAll answers every request of batch not yet answered with err (the
// taken ones) or leaves it to its caller (those abandoned).
func (c *committer) failAll(batch []*execReq, err error) {
	for _, r := range batch {
		if r.take() && !isDone(r) {
			r.answer(Result{}, err)
		}
	}
}

// ended returns ctx's error, or context.DeadlineExceeded once its
// deadline is past even if its timer has not fired yet.
func ended(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

// isDone reports whether r was answered.
func isDone(r *execReq) bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}
