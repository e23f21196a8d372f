package luatest

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/moongate/moongate/gateway/db"
	"github.com/moongate/moongate/scripting"
)

// errDown is the cause of every statement on a database a test took down.
var errDown = errors.New("the database is down (t:database_down in moongate test)")

// outages lends a test's service its stand-in databases, each of which the
// test may take down and bring back (t:database_down, t:database_up), to
// see what the service does when its database fails.
type outages struct {
	lent scripting.Databases
	mu   sync.Mutex
	dbs  map[string]*downable
}

// Get returns the stand-in for name, wrapped.
func (o *outages) Get(name string) (db.DB, bool) {
	d, ok := o.lent.Get(name)
	if !ok {
		return nil, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.dbs[name]
	if w == nil || w.DB != d {
		w = &downable{DB: d}
		if o.dbs == nil {
			o.dbs = map[string]*downable{}
		}
		o.dbs[name] = w
	}
	return w, true
}

// setDown takes the database name down or brings it back, reporting
// whether the service has such a database.
func (o *outages) setDown(name string, down bool) bool {
	d, ok := o.Get(name)
	if ok {
		d.(*downable).down.Store(down)
	}
	return ok
}

// downable is a database whose statements fail while down is set.
type downable struct {
	db.DB
	down atomic.Bool
}

func (d *downable) fail(op string) error { return &db.Error{DB: d.Name(), Op: op, Err: errDown} }

// Query fails while the database is down.
func (d *downable) Query(ctx context.Context, sql string, args ...any) (*db.Rows, error) {
	if d.down.Load() {
		return nil, d.fail("query")
	}
	return d.DB.Query(ctx, sql, args...)
}

// Exec fails while the database is down.
func (d *downable) Exec(ctx context.Context, sql string, args ...any) (db.Result, error) {
	if d.down.Load() {
		return db.Result{}, d.fail("exec")
	}
	return d.DB.Exec(ctx, sql, args...)
}

// Tx fails while the database is down.
func (d *downable) Tx(ctx context.Context, fn func(db.Tx) error) error {
	if d.down.Load() {
		return d.fail("begin")
	}
	return d.DB.Tx(ctx, fn)
}
