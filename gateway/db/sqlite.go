package db

import (
	"context"
	"database/sql"
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
type sqliteDB struct {
	name    string
	timeout time.Duration
	writer  *sql.DB
	readers *sql.DB // nil: the writer reads too
}

func openSQLite(ctx context.Context, cfg Config) (DB, error) {
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
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
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
	return d, nil
}

func (d *sqliteDB) Name() string { return d.name }

func (d *sqliteDB) Close() error {
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

// readOnly reports whether q starts, after blanks and comments, with
// SELECT or VALUES: statements that cannot write.
func readOnly(q string) bool {
	for {
		q = strings.TrimLeftFunc(q, unicode.IsSpace)
		switch {
		case strings.HasPrefix(q, "--"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return false
			}
			q = q[i+1:]
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q[2:], "*/")
			if i < 0 {
				return false
			}
			q = q[2+i+2:]
		default:
			i := strings.IndexFunc(q, func(r rune) bool { return !unicode.IsLetter(r) })
			if i < 0 {
				i = len(q)
			}
			w := strings.ToUpper(q[:i])
			return w == "SELECT" || w == "VALUES"
		}
	}
}

// sqlRunner is what *sql.DB, *sql.Conn and *sql.Tx share.
type sqlRunner interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (d *sqliteDB) Query(ctx context.Context, q string, args ...any) (*Rows, error) {
	r := d.writer
	if d.readers != nil && readOnly(q) {
		r = d.readers
	}
	return sqliteQuery(ctx, d.name, d.timeout, r, q, args)
}

func (d *sqliteDB) Exec(ctx context.Context, q string, args ...any) (Result, error) {
	return sqliteExec(ctx, d.name, d.timeout, d.writer, q, args)
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
}

func (t *sqliteTx) Query(ctx context.Context, q string, args ...any) (*Rows, error) {
	return sqliteQuery(ctx, t.name, t.timeout, t.tx, q, args)
}

func (t *sqliteTx) Exec(ctx context.Context, q string, args ...any) (Result, error) {
	return sqliteExec(ctx, t.name, t.timeout, t.tx, q, args)
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
	if err := fn(&sqliteTx{name: d.name, timeout: d.timeout, tx: tx}); err != nil {
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
