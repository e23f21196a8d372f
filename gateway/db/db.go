// Package db gives services their databases: a pool per configured
// database, SQLite (pure Go, modernc.org/sqlite) or PostgreSQL
// (github.com/jackc/pgx/v5, pgxpool), behind one small interface.
//
// Statements take values only through placeholders, written `?` for both
// drivers (translated to $1, $2, … for PostgreSQL, see [Rebind]). Every
// statement runs under a timeout ([Config.Timeout], default 5s); a statement
// stopped by it, or by the caller's context, returns an error that
// errors.Is reports as context.DeadlineExceeded (or context.Canceled).
//
// Values read come back as Go values of a few types only:
//
//	SQL NULL                      nil
//	integers                      int64 (exact, beyond 2^53 too)
//	floating point                float64
//	text, varchar, uuid, json     string
//	numeric / decimal (Postgres)  string (the exact decimal text)
//	blob / bytea                  []byte
//	boolean                       bool (SQLite: a column declared BOOLEAN or BOOL)
//	date, timestamp(tz)           time.Time in UTC (SQLite: a column declared
//	                              DATE, DATETIME or TIMESTAMP holding a
//	                              parsable time; otherwise the text)
//	arrays (Postgres)             []any of the above
//
// anything else PostgreSQL returns (interval, inet, …) is given as its text. Arguments may be
// nil, bool, int, int64, float64, string or []byte; anything else is
// refused before the statement is sent.
package db

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultTimeout is the per-statement timeout when [Config.Timeout] is zero.
const DefaultTimeout = 5 * time.Second

// DefaultMaxConns is the pool size when [Config.MaxConns] is zero: the
// PostgreSQL pool's connections, or SQLite's read-only connections.
const DefaultMaxConns = 4

// Config describes one database. The config package maps YAML to it.
type Config struct {
	// Name is how services name the database; errors carry it.
	Name string
	// Driver is "sqlite" or "postgres".
	Driver string
	// DSN is a file path or file: URI for SQLite (":memory:" for a
	// private in-memory database), a postgres:// URL or key=value string
	// for PostgreSQL.
	DSN string
	// MaxConns bounds the pool (default DefaultMaxConns). For SQLite it
	// is the number of read-only connections; writes always go through
	// one connection.
	MaxConns int
	// Timeout bounds each statement, and the wait for a connection
	// (default DefaultTimeout).
	Timeout time.Duration
}

// Rows is the whole result of a query, read before Query returns.
type Rows struct {
	// Columns are the result's column names, in the statement's order.
	Columns []string
	// Values holds one slice per row, one value per column, in the order
	// of Columns.
	Values [][]any
}

// Result is what a statement run with Exec did.
type Result struct {
	// RowsAffected is the number of rows inserted, updated or deleted.
	RowsAffected int64
	// LastInsertID is, for SQLite, last_insert_rowid() after the
	// statement. For PostgreSQL it is the first column of the last row
	// the statement returned, when the statement has a RETURNING clause
	// whose first column is an integer (`INSERT … RETURNING id`), and 0
	// otherwise.
	LastInsertID int64
}

// Bounds of one statement's result, which is read whole into memory.
const (
	// MaxResultRows is the most rows a statement may return.
	MaxResultRows = 10_000
	// MaxResultBytes bounds the size of a result's values together
	// (text and bytes by their length, other values as 8 bytes).
	MaxResultBytes = 16 << 20
)

// ErrResultTooLarge is the cause of the error a statement whose result
// goes past MaxResultRows or MaxResultBytes returns; what was read is
// dropped.
var ErrResultTooLarge = fmt.Errorf("the result is over %d rows or %d MiB: select less (WHERE, LIMIT)", MaxResultRows, MaxResultBytes>>20)

// resultSize tallies a result as it is read, against the bounds.
type resultSize struct{ rows, bytes int }

// add counts one row of vals, returning ErrResultTooLarge past a bound.
func (s *resultSize) add(vals []any) error {
	s.rows++
	for _, v := range vals {
		switch v := v.(type) {
		case string:
			s.bytes += len(v)
		case []byte:
			s.bytes += len(v)
		default:
			s.bytes += 8
		}
	}
	if s.rows > MaxResultRows || s.bytes > MaxResultBytes {
		return ErrResultTooLarge
	}
	return nil
}

// Querier runs statements; both a [DB] and a [Tx] are Queriers.
type Querier interface {
	// Query runs a statement and returns all the rows it gives.
	Query(ctx context.Context, sql string, args ...any) (*Rows, error)
	// Exec runs a statement that returns no rows (or whose rows are not
	// wanted, beyond RETURNING's first column, see Result).
	Exec(ctx context.Context, sql string, args ...any) (Result, error)
}

// Tx is a transaction, given to the function passed to [DB.Tx].
type Tx interface {
	Querier
}

// DB is one configured database and its pool. It is safe for concurrent
// use.
type DB interface {
	Querier
	// Tx runs fn in a transaction: committed when fn returns nil, rolled
	// back when it returns an error (which Tx returns) or panics (the
	// panic goes on). The transaction must not be used after fn returns.
	// Inside fn, use the Tx, not the DB: on SQLite the transaction holds
	// the only writer connection, so a write through the DB waits for it
	// (and fails at its timeout).
	Tx(ctx context.Context, fn func(Tx) error) error
	// Close closes the pool; statements running are let finish.
	Close() error
	// Name is Config.Name.
	Name() string
}

// Error is what every method returns when something fails: the database's
// name, what was being done, and the driver's error (reachable with
// errors.As, e.g. as *pgconn.PgError or *sqlite.Error).
type Error struct {
	// DB is the database's name.
	DB string
	// Op is "open", "query", "exec", "begin", "commit", "rollback" or
	// "close".
	Op string
	// Err is the cause.
	Err error
}

// Error returns e.g. `db "main": exec: UNIQUE constraint failed: users.email`.
func (e *Error) Error() string {
	return fmt.Sprintf("db %q: %s: %v", e.DB, e.Op, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Open opens the database cfg describes. A malformed DSN or an unknown
// driver is an error. SQLite opens at once, creating the file and its
// folder; a PostgreSQL pool connects lazily, so a server that is down is
// not an error here but on each call until it is back.
func Open(ctx context.Context, cfg Config) (DB, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	switch cfg.Driver {
	case "sqlite":
		return openSQLite(ctx, cfg)
	case "postgres":
		return openPostgres(ctx, cfg)
	default:
		return nil, &Error{DB: cfg.Name, Op: "open", Err: fmt.Errorf("unknown driver %q (want sqlite or postgres)", cfg.Driver)}
	}
}

// checkArgs returns args with int made int64, or an error naming the first
// argument of a type statements do not take.
func checkArgs(args []any) ([]any, error) {
	out := args
	for i, a := range args {
		switch v := a.(type) {
		case nil, bool, int64, float64, string, []byte:
		case int:
			if &out[0] == &args[0] {
				out = append([]any(nil), args...)
			}
			out[i] = int64(v)
		default:
			return nil, fmt.Errorf("argument %d: unsupported type %T (want nil, bool, integer, number, string or bytes)", i+1, a)
		}
	}
	return out, nil
}

// wrap makes err an *Error, noting when ctx's deadline or cancellation is
// what stopped the statement, so that errors.Is finds it.
func wrap(name, op string, ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%v)", cerr, err)
	}
	return &Error{DB: name, Op: op, Err: err}
}
