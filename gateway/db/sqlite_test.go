package db

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTestSQLite(t *testing.T, timeout time.Duration) DB {
	t.Helper()
	d, err := Open(context.Background(), Config{
		Name: "lite", Driver: "sqlite",
		DSN:     filepath.Join(t.TempDir(), "test.db"),
		Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func mustExec(t *testing.T, d Querier, q string, args ...any) Result {
	t.Helper()
	r, err := d.Exec(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return r
}

func mustQuery(t *testing.T, d Querier, q string, args ...any) *Rows {
	t.Helper()
	r, err := d.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return r
}

func TestSQLiteWAL(t *testing.T) {
	d := openTestSQLite(t, 0)
	r := mustQuery(t, d, "SELECT * FROM pragma_journal_mode")
	if got := r.Values[0][0]; got != "wal" {
		t.Fatalf("journal_mode = %v, want wal", got)
	}
	r = mustQuery(t, d, "SELECT * FROM pragma_busy_timeout")
	if got := r.Values[0][0]; got != int64(5000) {
		t.Fatalf("busy_timeout = %v, want 5000", got)
	}
}

func TestSQLiteValues(t *testing.T) {
	d := openTestSQLite(t, 0)
	mustExec(t, d, `CREATE TABLE v (id INTEGER PRIMARY KEY, i INTEGER, f REAL, s TEXT, b BLOB, ok BOOLEAN, at DATETIME, n TEXT)`)
	big := int64(1)<<53 + 1
	at := "2026-01-02 03:04:05"
	res := mustExec(t, d, `INSERT INTO v (i, f, s, b, ok, at, n) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		big, 1.5, "héllo", []byte{0, 1, 255}, true, at, nil)
	if res.RowsAffected != 1 || res.LastInsertID != 1 {
		t.Fatalf("result = %+v", res)
	}
	res = mustExec(t, d, `INSERT INTO v (i) VALUES (?)`, math.MaxInt64)
	if res.LastInsertID != 2 {
		t.Fatalf("second LastInsertID = %d", res.LastInsertID)
	}
	r := mustQuery(t, d, `SELECT i, f, s, b, ok, at, n FROM v ORDER BY id`)
	if want := []string{"i", "f", "s", "b", "ok", "at", "n"}; !reflect.DeepEqual(r.Columns, want) {
		t.Fatalf("columns = %v, want %v", r.Columns, want)
	}
	want := []any{big, 1.5, "héllo", []byte{0, 1, 255}, true,
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), nil}
	if !reflect.DeepEqual(r.Values[0], want) {
		t.Fatalf("row = %#v\nwant  %#v", r.Values[0], want)
	}
	if got := r.Values[1][0]; got != int64(math.MaxInt64) {
		t.Fatalf("max int64 came back as %v", got)
	}
	// Arguments of other types are refused before anything runs.
	_, err := d.Exec(context.Background(), `INSERT INTO v (i) VALUES (?)`, int32(1))
	if err == nil || !strings.Contains(err.Error(), "unsupported type int32") {
		t.Fatalf("int32 argument: %v", err)
	}
	// An empty result still has its columns and no rows.
	r = mustQuery(t, d, `SELECT id, s FROM v WHERE id < 0`)
	if len(r.Columns) != 2 || len(r.Values) != 0 {
		t.Fatalf("empty result = %+v", r)
	}
}

func TestSQLiteInjectionVerbatim(t *testing.T) {
	d := openTestSQLite(t, 0)
	mustExec(t, d, `CREATE TABLE users (name TEXT)`)
	evil := []string{
		`'); DROP TABLE users; --`,
		`Robert'); DROP TABLE students;--`,
		`" OR 1=1 --`,
		`?`, `$1`, `/* ? */`, "\x00nul", `\'`,
	}
	for _, s := range evil {
		mustExec(t, d, `INSERT INTO users (name) VALUES (?)`, s)
	}
	r := mustQuery(t, d, `SELECT name FROM users WHERE name = ? OR 1=0`, evil[0])
	if len(r.Values) != 1 || r.Values[0][0] != evil[0] {
		t.Fatalf("lookup = %v", r.Values)
	}
	r = mustQuery(t, d, `SELECT name FROM users ORDER BY rowid`)
	if len(r.Values) != len(evil) {
		t.Fatalf("%d rows, want %d", len(r.Values), len(evil))
	}
	for i, row := range r.Values {
		if row[0] != evil[i] {
			t.Errorf("row %d = %q, want %q", i, row[0], evil[i])
		}
	}
}

func TestSQLiteConcurrentWriters(t *testing.T) {
	d := openTestSQLite(t, 0)
	mustExec(t, d, `CREATE TABLE c (g INTEGER, n INTEGER)`)
	const goroutines, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each*2)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for n := 0; n < each; n++ {
				if _, err := d.Exec(ctx, `INSERT INTO c (g, n) VALUES (?, ?)`, g, n); err != nil {
					errs <- err
				}
				if n%5 == 0 {
					err := d.Tx(ctx, func(tx Tx) error {
						r, err := tx.Query(ctx, `SELECT count(*) FROM c WHERE g = ?`, g)
						if err != nil {
							return err
						}
						_, err = tx.Exec(ctx, `INSERT INTO c (g, n) VALUES (?, ?)`, g+100, r.Values[0][0])
						return err
					})
					if err != nil {
						errs <- err
					}
				}
				if _, err := d.Query(ctx, `SELECT count(*) FROM c`); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r := mustQuery(t, d, `SELECT count(*) FROM c WHERE g < 100`)
	if got := r.Values[0][0]; got != int64(goroutines*each) {
		t.Fatalf("%v rows, want %d", got, goroutines*each)
	}
}

func TestSQLiteTx(t *testing.T) {
	d := openTestSQLite(t, 0)
	ctx := context.Background()
	mustExec(t, d, `CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT UNIQUE)`)
	boom := errors.New("boom")
	err := d.Tx(ctx, func(tx Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO a (v) VALUES (?)`, "x"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx returned %v, want boom", err)
	}
	// A failing statement, its error returned by fn, rolls back too.
	err = d.Tx(ctx, func(tx Tx) error {
		tx.Exec(ctx, `INSERT INTO a (v) VALUES (?)`, "y")
		_, err := tx.Exec(ctx, `INSERT INTO a (v) VALUES (?)`, "y")
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "UNIQUE") || !strings.Contains(err.Error(), `db "lite"`) {
		t.Fatalf("constraint error = %v", err)
	}
	// A panic rolls back and goes on.
	func() {
		defer func() { recover() }()
		d.Tx(ctx, func(tx Tx) error {
			tx.Exec(ctx, `INSERT INTO a (v) VALUES (?)`, "z")
			panic("raised")
		})
	}()
	if r := mustQuery(t, d, `SELECT count(*) FROM a`); r.Values[0][0] != int64(0) {
		t.Fatalf("%v rows left after rollbacks", r.Values[0][0])
	}
	err = d.Tx(ctx, func(tx Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO a (v) VALUES (?)`, "kept")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := mustQuery(t, d, `SELECT v FROM a`); len(r.Values) != 1 || r.Values[0][0] != "kept" {
		t.Fatalf("after commit: %v", r.Values)
	}
}

func TestSQLiteErrors(t *testing.T) {
	d := openTestSQLite(t, 0)
	_, err := d.Exec(context.Background(), `CREATE TABLE (`)
	var e *Error
	if !errors.As(err, &e) || e.DB != "lite" || e.Op != "exec" || !strings.Contains(err.Error(), "syntax error") {
		t.Fatalf("syntax error = %v", err)
	}
	// Writes never reach the read-only connections.
	_, err = d.Query(context.Background(), `SELECT 1; CREATE TABLE t (x)`)
	if r := mustQuery(t, d, `SELECT count(*) FROM sqlite_master WHERE name = 't'`); r.Values[0][0] != int64(0) {
		t.Fatalf("a query on a read connection wrote (err %v)", err)
	}
	// RETURNING through Query goes to the writer.
	mustExec(t, d, `CREATE TABLE r (id INTEGER PRIMARY KEY, v TEXT)`)
	r := mustQuery(t, d, `INSERT INTO r (v) VALUES (?) RETURNING id`, "a")
	if len(r.Values) != 1 || r.Values[0][0] != int64(1) {
		t.Fatalf("RETURNING = %v", r.Values)
	}

	// A missing folder is created; one that cannot be (a file is in the
	// way) fails the open.
	blocked := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), Config{Name: "x", Driver: "sqlite",
		DSN: filepath.Join(blocked, "dir.db")}); err == nil {
		t.Fatal("Open under a regular file succeeded")
	}
	if _, err := Open(context.Background(), Config{Name: "x", Driver: "mysql", DSN: "x"}); err == nil {
		t.Fatal("unknown driver accepted")
	}
}

func TestSQLiteTimeout(t *testing.T) {
	d := openTestSQLite(t, 100*time.Millisecond)
	endless := `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c`
	start := time.Now()
	_, err := d.Query(context.Background(), endless)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("endless query: %v, want a deadline error", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the timeout took %v", el)
	}
	// The connection is usable after.
	mustQuery(t, d, `SELECT 1`)
	// The caller's context bounds the statement too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Exec(ctx, `CREATE TABLE t (x)`); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled context: %v", err)
	}
}

func TestSQLiteMemory(t *testing.T) {
	d, err := Open(context.Background(), Config{Name: "m", Driver: "sqlite", DSN: ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mustExec(t, d, `CREATE TABLE t (x)`)
	mustExec(t, d, `INSERT INTO t VALUES (?)`, "a")
	if r := mustQuery(t, d, `SELECT x FROM t`); r.Values[0][0] != "a" {
		t.Fatalf("memory db read %v", r.Values)
	}
}
