package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// sqliteDB is a SQLite database in WAL mode: one connection that writes
// (so writers of this process queue for it instead of failing with
// SQLITE_BUSY), and up to MaxConns read-only connections that run the
// queries that cannot write (a statement starting with SELECT or VALUES),
// which WAL lets read while the writer writes. Every other statement,
// queries with RETURNING or WITH included, and every transaction, use the
// writer. The busy timeout (Config.Timeout) covers other processes sharing
// the file. A ":memory:" database has the writer only.
//
// Statements are prepared once and kept, MaxCachedStatements for the
// writer and as many for the readers. An Exec of plain DML (INSERT,
// UPDATE, DELETE, REPLACE) outside a transaction goes through the
// committer, which commits the statements of concurrent callers together
// (see committer); any other statement runs alone.
type sqliteDB struct {
	name    string
	timeout time.Duration
	writer  *sql.DB
	readers *sql.DB // nil: the writer reads too
	wcache  *stmtCache
	rcache  *stmtCache // nil when readers is
	gc      *committer // nil: no group commit (benchmarks compare)
}

// sqliteOptions are the knobs tests and benchmarks of this package turn.
type sqliteOptions struct {
	noGroupCommit bool   // run every Exec alone, as before group commit
	noCache       bool   // prepare nothing: every statement parsed at each call
	hold          func() // committer.hold
}

func openSQLite(ctx context.Context, cfg Config) (DB, error) {
	return openSQLiteWith(ctx, cfg, sqliteOptions{})
}

func openSQLiteWith(ctx context.Context, cfg Config, opts sqliteOptions) (DB, error) {
	fail := func(err error) (DB, error) { return nil, &Error{DB: cfg.Name, Op: "open", Err: err} }
	if cfg.DSN == "" {
		return fail(fmt.Errorf("empty dsn (want a file path)"))
	}
	memory := cfg.DSN == ":memory:" || strings.Contains(cfg.DSN, "mode=memory")
	if !memory && !strings.HasPrefix(cfg.DSN, "file:") {
		// A plain path: its folder is created as the file will be
		// (file: URIs are the caller's to prepare).
		if err := os.MkdirAll(filepath.Dir(cfg.DSN), 0o755); err != nil {
			return fail(fmt.Errorf("create the database's folder: %w", err))
		}
	}
	sep := "?"
	if strings.Contains(cfg.DSN, "?") {
		sep = "&"
	}
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", cfg.Timeout.Milliseconds())
	d := &sqliteDB{name: cfg.Name, timeout: cfg.Timeout}
	w, err := sql.Open("sqlite", cfg.DSN+sep+busy+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)&_txlock=immediate")
	if err != nil {
		return fail(err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	d.writer = w
	// Opening (creating the file, WAL mode) is not a statement: a short
	// statement timeout does not bound it below the default.
	pctx, cancel := context.WithTimeout(ctx, max(cfg.Timeout, DefaultTimeout))
	defer cancel()
	if err := w.PingContext(pctx); err != nil {
		w.Close()
		return fail(err)
	}
	if !memory {
		r, err := sql.Open("sqlite", cfg.DSN+sep+busy+"&_pragma=query_only(1)")
		if err != nil {
			w.Close()
			return fail(err)
		}
		r.SetMaxOpenConns(cfg.MaxConns)
		r.SetMaxIdleConns(cfg.MaxConns)
		if err := r.PingContext(pctx); err != nil {
			w.Close()
			r.Close()
			return fail(err)
		}
		d.readers = r
	}
	if !opts.noCache {
		d.wcache = newStmtCache(d.writer, MaxCachedStatements)
		if d.readers != nil {
			d.rcache = newStmtCache(d.readers, MaxCachedStatements)
		}
	}
	if !opts.noGroupCommit && !opts.noCache {
		if d.gc, err = newCommitter(d, opts.hold); err != nil {
			d.Close()
			return fail(err)
		}
	}
	return d, nil
}

func (d *sqliteDB) Name() string { return d.name }

// Close stops the committer (the batch it runs is let finish, the
// requests queued fail), closes the cached statements, then the
// connections.
func (d *sqliteDB) Close() error {
	if d.gc != nil {
		d.gc.close()
	}
	if d.wcache != nil {
		d.wcache.close()
	}
	if d.rcache != nil {
		d.rcache.close()
	}
	err := d.writer.Close()
	if d.readers != nil {
		if rerr := d.readers.Close(); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return &Error{DB: d.name, Op: "close", Err: err}
	}
	return nil
}

// firstKeyword returns the first word of q, upper-cased, after blanks
// and comments ("" when there is none).
func firstKeyword(q string) string {
	for {
		q = strings.TrimLeftFunc(q, unicode.IsSpace)
		switch {
		case strings.HasPrefix(q, "--"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return ""
			}
			q = q[i+1:]
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q[2:], "*/")
			if i < 0 {
				return ""
			}
			q = q[2+i+2:]
		default:
			i := strings.IndexFunc(q, func(r rune) bool { return !unicode.IsLetter(r) })
			if i < 0 {
				i = len(q)
			}
			return strings.ToUpper(q[:i])
		}
	}
}

// readOnly reports whether q starts, after blanks and comments, with
// SELECT or VALUES: statements that cannot write.
func readOnly(q string) bool {
	w := firstKeyword(q)
	return w == "SELECT" || w == "VALUES"
}

// plainDML reports whether q is one statement starting, after blanks and
// comments, with INSERT, UPDATE, DELETE or REPLACE: what the committer
// may run inside its transaction. (WITH … INSERT is not: it runs alone.)
func plainDML(q string) bool {
	switch firstKeyword(q) {
	case "INSERT", "UPDATE", "DELETE", "REPLACE":
		return singleStatement(q)
	}
	return false
}

// sqlRunner is what *sql.DB, *sql.Conn and *sql.Tx share.
type sqlRunner interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (d *sqliteDB) Query(ctx context.Context, q string, args ...any) (*Rows, error) {
	r, c := d.writer, d.wcache
	if d.readers != nil && readOnly(q) {
		r, c = d.readers, d.rcache
	}
	if c == nil || !singleStatement(q) {
		return sqliteQuery(ctx, d.name, d.timeout, r, q, args)
	}
	args, err := checkArgs(args)
	if err != nil {
		return nil, &Error{DB: d.name, Op: "query", Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	st, err := c.get(ctx, q)
	if err != nil {
		return nil, wrap(d.name, "query", ctx, err)
	}
	defer c.release(st)
	return sqliteQuery(ctx, d.name, d.timeout, stmtRunner{st.st}, q, args)
}

func (d *sqliteDB) Exec(ctx context.Context, q string, args ...any) (Result, error) {
	if d.wcache == nil || !singleStatement(q) {
		return sqliteExec(ctx, d.name, d.timeout, d.writer, q, args)
	}
	args, err := checkArgs(args)
	if err != nil {
		return Result{}, &Error{DB: d.name, Op: "exec", Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	st, err := d.wcache.get(ctx, q)
	if err != nil {
		return Result{}, wrap(d.name, "exec", ctx, err)
	}
	defer d.wcache.release(st)
	if d.gc != nil && plainDML(q) {
		res, err := d.gc.exec(ctx, st, args)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				err = wrap(d.name, "exec", ctx, err)
			}
			return Result{}, err
		}
		return res, nil
	}
	return sqliteExec(ctx, d.name, d.timeout, stmtRunner{st.st}, q, args)
}

// stmtRunner runs one prepared statement as a sqlRunner (the query text
// it is given is the statement's).
type stmtRunner struct{ st *sql.Stmt }

func (s stmtRunner) QueryContext(ctx context.Context, _ string, args ...any) (*sql.Rows, error) {
	return s.st.QueryContext(ctx, args...)
}

func (s stmtRunner) ExecContext(ctx context.Context, _ string, args ...any) (sql.Result, error) {
	return s.st.ExecContext(ctx, args...)
}

func sqliteQuery(ctx context.Context, name string, timeout time.Duration, r sqlRunner, q string, args []any) (*Rows, error) {
	args, err := checkArgs(args)
	if err != nil {
		return nil, &Error{DB: name, Op: "query", Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, wrap(name, "query", ctx, err)
	}
	defer rows.Close()
	out, err := readSQLRows(rows)
	if err != nil {
		return nil, wrap(name, "query", ctx, err)
	}
	return out, nil
}

func sqliteExec(ctx context.Context, name string, timeout time.Duration, r sqlRunner, q string, args []any) (Result, error) {
	args, err := checkArgs(args)
	if err != nil {
		return Result{}, &Error{DB: name, Op: "exec", Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := r.ExecContext(ctx, q, args...)
	if err != nil {
		return Result{}, wrap(name, "exec", ctx, err)
	}
	var out Result
	out.RowsAffected, _ = res.RowsAffected()
	out.LastInsertID, _ = res.LastInsertId()
	return out, nil
}

// readSQLRows reads all of rows, making values of a column declared
// BOOLEAN or BOOL bool.
func readSQLRows(rows *sql.Rows) (*Rows, error) {
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	boolean := make([]bool, len(cols))
	for i, t := range types {
		switch strings.ToUpper(t.DatabaseTypeName()) {
		case "BOOLEAN", "BOOL":
			boolean[i] = true
		}
	}
	out := &Rows{Columns: cols, Values: [][]any{}}
	var size resultSize
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		for i, v := range vals {
			if n, ok := v.(int64); ok && boolean[i] {
				vals[i] = n != 0
			}
		}
		if err := size.add(vals); err != nil {
			return nil, err
		}
		out.Values = append(out.Values, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

type sqliteTx struct {
	name    string
	timeout time.Duration
	tx      *sql.Tx
	cache   *stmtCache // statements already prepared are used; nil: none
}

// runner returns what runs q in the transaction: the cached statement of
// q bound to it, when there is one (none is prepared here: preparing
// through the pool would wait for the connection the transaction holds),
// and a function to call when done.
func (t *sqliteTx) runner(ctx context.Context, q string) (sqlRunner, func()) {
	if t.cache == nil {
		return t.tx, func() {}
	}
	st := t.cache.lookup(q)
	if st == nil {
		return t.tx, func() {}
	}
	return stmtRunner{t.tx.StmtContext(ctx, st.st)}, func() { t.cache.release(st) }
}

func (t *sqliteTx) Query(ctx context.Context, q string, args ...any) (*Rows, error) {
	r, done := t.runner(ctx, q)
	defer done()
	return sqliteQuery(ctx, t.name, t.timeout, r, q, args)
}

func (t *sqliteTx) Exec(ctx context.Context, q string, args ...any) (Result, error) {
	r, done := t.runner(ctx, q)
	defer done()
	return sqliteExec(ctx, t.name, t.timeout, r, q, args)
}

// Tx waits at most the timeout for the writer connection, then runs fn in
// a transaction (BEGIN IMMEDIATE) on it; other writers wait until it ends.
func (d *sqliteDB) Tx(ctx context.Context, fn func(Tx) error) (err error) {
	wctx, cancel := context.WithTimeout(ctx, d.timeout)
	conn, err := d.writer.Conn(wctx)
	cancel()
	if err != nil {
		return wrap(d.name, "begin", wctx, err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return wrap(d.name, "begin", ctx, err)
	}
	done := false
	defer func() {
		if !done {
			tx.Rollback()
		}
	}()
	if err := fn(&sqliteTx{name: d.name, timeout: d.timeout, tx: tx, cache: d.wcache}); err != nil {
		done = true
		if rerr := tx.Rollback(); rerr != nil {
			return fmt.Errorf("%w (and rolling back: %v)", err, wrap(d.name, "rollback", ctx, rerr))
		}
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return wrap(d.name, "commit", ctx, err)
	}
	return nil
}
