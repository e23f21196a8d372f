package db

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgDB is a PostgreSQL pool (pgxpool). It connects lazily: Open checks
// the DSN only, and a server that is down makes each call fail (within the
// timeout) until it is back, with no restart. Statements run with the
// extended protocol, so one statement per call.
type pgDB struct {
	name    string
	timeout time.Duration
	pool    *pgxpool.Pool
}

func openPostgres(ctx context.Context, cfg Config) (DB, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, &Error{DB: cfg.Name, Op: "open", Err: err}
	}
	pc.MaxConns = int32(cfg.MaxConns)
	if pc.MinConns > pc.MaxConns {
		pc.MinConns = pc.MaxConns
	}
	if t := pc.ConnConfig.ConnectTimeout; t == 0 || t > cfg.Timeout {
		pc.ConnConfig.ConnectTimeout = cfg.Timeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, &Error{DB: cfg.Name, Op: "open", Err: err}
	}
	return &pgDB{name: cfg.Name, timeout: cfg.Timeout, pool: pool}, nil
}

func (d *pgDB) Name() string { return d.name }

func (d *pgDB) Close() error {
	d.pool.Close()
	return nil
}

// pgRunner is what *pgxpool.Pool and pgx.Tx share.
type pgRunner interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func (d *pgDB) Query(ctx context.Context, q string, args ...any) (*Rows, error) {
	out, _, err := pgRun(ctx, d.name, "query", d.timeout, d.pool, q, args)
	return out, err
}

func (d *pgDB) Exec(ctx context.Context, q string, args ...any) (Result, error) {
	return pgExec(ctx, d.name, d.timeout, d.pool, q, args)
}

func pgExec(ctx context.Context, name string, timeout time.Duration, r pgRunner, q string, args []any) (Result, error) {
	rows, tag, err := pgRun(ctx, name, "exec", timeout, r, q, args)
	if err != nil {
		return Result{}, err
	}
	res := Result{RowsAffected: tag.RowsAffected()}
	if n := len(rows.Values); n > 0 && len(rows.Values[n-1]) > 0 {
		if id, ok := rows.Values[n-1][0].(int64); ok {
			res.LastInsertID = id
		}
	}
	return res, nil
}

func pgRun(ctx context.Context, name, op string, timeout time.Duration, r pgRunner, q string, args []any) (*Rows, pgconn.CommandTag, error) {
	args, err := checkArgs(args)
	if err != nil {
		return nil, pgconn.CommandTag{}, &Error{DB: name, Op: op, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rows, err := r.Query(ctx, Rebind(q), args...)
	if err != nil {
		return nil, pgconn.CommandTag{}, wrap(name, op, ctx, err)
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	out := &Rows{Columns: make([]string, len(fields)), Values: [][]any{}}
	for i, f := range fields {
		out.Columns[i] = f.Name
	}
	var size resultSize
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, pgconn.CommandTag{}, wrap(name, op, ctx, err)
		}
		raw := rows.RawValues()
		for i, v := range vals {
			switch fields[i].DataTypeOID {
			case pgtype.JSONOID, pgtype.JSONBOID:
				vals[i] = jsonText(raw[i], fields[i])
			default:
				vals[i] = pgValue(v)
			}
		}
		if err := size.add(vals); err != nil {
			return nil, pgconn.CommandTag{}, &Error{DB: name, Op: op, Err: err}
		}
		out.Values = append(out.Values, vals)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, pgconn.CommandTag{}, wrap(name, op, ctx, err)
	}
	return out, rows.CommandTag(), nil
}

// jsonText is a json or jsonb value as its text (jsonb's binary format is
// a version byte, 1, then the text).
func jsonText(raw []byte, f pgconn.FieldDescription) any {
	if raw == nil {
		return nil
	}
	if f.DataTypeOID == pgtype.JSONBOID && f.Format == pgx.BinaryFormatCode && len(raw) > 0 {
		raw = raw[1:]
	}
	return string(raw)
}

// pgValue maps what pgx decodes to the types the package documents.
func pgValue(v any) any {
	switch x := v.(type) {
	case nil, bool, int64, float64, string, []byte:
		return x
	case time.Time:
		return x.UTC()
	case int8:
		return int64(x)
	case int16:
		return int64(x)
	case int32:
		return int64(x)
	case uint32:
		return int64(x)
	case float32:
		return float64(x)
	case [16]byte: // uuid
		return fmt.Sprintf("%x-%x-%x-%x-%x", x[0:4], x[4:6], x[6:8], x[8:10], x[10:16])
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = pgValue(e)
		}
		return out
	case driver.Valuer: // numeric (its decimal text), interval, …
		dv, err := x.Value()
		if err != nil {
			return fmt.Sprint(x)
		}
		if _, again := dv.(driver.Valuer); again {
			return fmt.Sprint(dv)
		}
		return pgValue(dv)
	case fmt.Stringer: // inet, cidr, …
		return x.String()
	default:
		return fmt.Sprint(x)
	}
}

type pgTx struct {
	name    string
	timeout time.Duration
	tx      pgx.Tx
}

func (t *pgTx) Query(ctx context.Context, q string, args ...any) (*Rows, error) {
	out, _, err := pgRun(ctx, t.name, "query", t.timeout, t.tx, q, args)
	return out, err
}

func (t *pgTx) Exec(ctx context.Context, q string, args ...any) (Result, error) {
	return pgExec(ctx, t.name, t.timeout, t.tx, q, args)
}

// Tx takes a connection (waiting at most the timeout), runs fn in a
// transaction on it, and commits or rolls back, each under the timeout.
// The rollback runs even when ctx is done.
func (d *pgDB) Tx(ctx context.Context, fn func(Tx) error) (err error) {
	sctx, cancel := context.WithTimeout(ctx, d.timeout)
	conn, err := d.pool.Acquire(sctx)
	if err != nil {
		cancel()
		return wrap(d.name, "begin", sctx, err)
	}
	defer conn.Release()
	tx, err := conn.Begin(sctx)
	cancel()
	if err != nil {
		return wrap(d.name, "begin", sctx, err)
	}
	rollback := func() error {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
		defer cancel()
		if err := tx.Rollback(rctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
			return wrap(d.name, "rollback", rctx, err)
		}
		return nil
	}
	done := false
	defer func() {
		if !done {
			rollback()
		}
	}()
	if err := fn(&pgTx{name: d.name, timeout: d.timeout, tx: tx}); err != nil {
		done = true
		if rerr := rollback(); rerr != nil {
			return fmt.Errorf("%w (and rolling back: %v)", err, rerr)
		}
		return err
	}
	done = true
	cctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	if err := tx.Commit(cctx); err != nil {
		return wrap(d.name, "commit", cctx, err)
	}
	return nil
}
