package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// pgDSN is the test server: MOONGATE_TEST_POSTGRES, or a local one with
// trust authentication.
func pgDSN() string {
	if s := os.Getenv("MOONGATE_TEST_POSTGRES"); s != "" {
		return s
	}
	return "postgres://127.0.0.1:5432/test"
}

// openTestPG opens the test server, skipping the test when it cannot be
// reached (failing it when CI=true).
func openTestPG(t *testing.T, timeout time.Duration) DB {
	t.Helper()
	d, err := Open(context.Background(), Config{Name: "pg", Driver: "postgres", DSN: pgDSN(), Timeout: timeout})
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err = d.Query(ctx, "SELECT 1")
		cancel()
		if err != nil {
			d.Close()
		}
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL at %s: %v", pgDSN(), err)
		}
		t.Skipf("PostgreSQL at %s unreachable, skipping (set CI=true to fail instead): %v", pgDSN(), err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// pgTable returns a table name unique to this run of t, dropped at cleanup.
func pgTable(t *testing.T, d DB) string {
	name := strings.ToLower(fmt.Sprintf("mg_%s_%d", t.Name(), time.Now().UnixNano()))
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
	t.Cleanup(func() {
		if _, err := d.Exec(context.Background(), "DROP TABLE IF EXISTS "+name); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	return name
}

func TestPostgresValues(t *testing.T) {
	d := openTestPG(t, 0)
	tb := pgTable(t, d)
	mustExec(t, d, `CREATE TABLE `+tb+` (id bigserial PRIMARY KEY, i bigint, s smallint, f double precision,
		t text, b bytea, ok boolean, at timestamptz, n numeric, j jsonb, u uuid, a int[], nothing text)`)
	big := int64(1)<<53 + 1
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	res := mustExec(t, d, `INSERT INTO `+tb+` (i, s, f, t, b, ok, at, n, j, u, a, nothing)
		VALUES (?, ?, ?, ?, ?, ?, ?::text::timestamptz, ?::numeric, ?::jsonb, ?::uuid, '{1,2}', ?) RETURNING id`,
		big, 7, 1.5, "héllo '?'", []byte{0, 1, 255}, true, at.Format(time.RFC3339Nano),
		"12345678901234567890.125", `{"a": [1, "?"]}`, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", nil)
	if res.RowsAffected != 1 || res.LastInsertID != 1 {
		t.Fatalf("result = %+v, want 1 row and id 1", res)
	}
	res = mustExec(t, d, `INSERT INTO `+tb+` (i) VALUES (?)`, int64(math.MaxInt64))
	if res.RowsAffected != 1 || res.LastInsertID != 0 {
		t.Fatalf("without RETURNING: %+v, want 1 row and id 0", res)
	}
	r := mustQuery(t, d, `SELECT i, s, f, t, b, ok, at, n, j, u, a, nothing FROM `+tb+` ORDER BY id`)
	if want := []string{"i", "s", "f", "t", "b", "ok", "at", "n", "j", "u", "a", "nothing"}; !reflect.DeepEqual(r.Columns, want) {
		t.Fatalf("columns = %v", r.Columns)
	}
	want := []any{big, int64(7), 1.5, "héllo '?'", []byte{0, 1, 255}, true, at,
		"12345678901234567890.125", `{"a": [1, "?"]}`, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
		[]any{int64(1), int64(2)}, nil}
	if !reflect.DeepEqual(r.Values[0], want) {
		t.Fatalf("row = %#v\nwant  %#v", r.Values[0], want)
	}
	if got := r.Values[1][0]; got != int64(math.MaxInt64) {
		t.Fatalf("max int64 came back as %v", got)
	}
	// ? in literals, identifiers and comments is not a placeholder.
	r = mustQuery(t, d, `SELECT '?' AS "q?", ? /* ? */ AS v -- ?`, "x")
	if !reflect.DeepEqual(r.Columns, []string{"q?", "v"}) || !reflect.DeepEqual(r.Values, [][]any{{"?", "x"}}) {
		t.Fatalf("literals: %v %v", r.Columns, r.Values)
	}
}

func TestPostgresInjectionVerbatim(t *testing.T) {
	d := openTestPG(t, 0)
	tb := pgTable(t, d)
	mustExec(t, d, `CREATE TABLE `+tb+` (id serial, name text)`)
	evil := []string{`'); DROP TABLE ` + tb + `; --`, `" OR 1=1 --`, `?`, `$1`, `$$ ? $$`, `\'`, `/* ? */`}
	for _, s := range evil {
		mustExec(t, d, `INSERT INTO `+tb+` (name) VALUES (?)`, s)
	}
	r := mustQuery(t, d, `SELECT name FROM `+tb+` ORDER BY id`)
	if len(r.Values) != len(evil) {
		t.Fatalf("%d rows, want %d", len(r.Values), len(evil))
	}
	for i, row := range r.Values {
		if row[0] != evil[i] {
			t.Errorf("row %d = %q, want %q", i, row[0], evil[i])
		}
	}
}

func TestPostgresTxAndErrors(t *testing.T) {
	d := openTestPG(t, 0)
	ctx := context.Background()
	tb := pgTable(t, d)
	mustExec(t, d, `CREATE TABLE `+tb+` (id serial PRIMARY KEY, v text UNIQUE)`)
	boom := errors.New("boom")
	err := d.Tx(ctx, func(tx Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO `+tb+` (v) VALUES (?)`, "x"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx = %v, want boom", err)
	}
	err = d.Tx(ctx, func(tx Tx) error {
		tx.Exec(ctx, `INSERT INTO `+tb+` (v) VALUES (?)`, "y")
		_, err := tx.Exec(ctx, `INSERT INTO `+tb+` (v) VALUES (?)`, "y")
		return err
	})
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" || !strings.Contains(err.Error(), `db "pg": exec: `) {
		t.Fatalf("unique violation = %v", err)
	}
	func() {
		defer func() { recover() }()
		d.Tx(ctx, func(tx Tx) error {
			tx.Exec(ctx, `INSERT INTO `+tb+` (v) VALUES (?)`, "z")
			panic("raised")
		})
	}()
	if r := mustQuery(t, d, `SELECT count(*) FROM `+tb); r.Values[0][0] != int64(0) {
		t.Fatalf("%v rows left after rollbacks", r.Values[0][0])
	}
	err = d.Tx(ctx, func(tx Tx) error {
		r, err := tx.Exec(ctx, `INSERT INTO `+tb+` (v) VALUES (?) RETURNING id`, "kept")
		if err == nil && r.LastInsertID == 0 {
			err = fmt.Errorf("no id: %+v", r)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := mustQuery(t, d, `SELECT v FROM `+tb); len(r.Values) != 1 || r.Values[0][0] != "kept" {
		t.Fatalf("after commit: %v", r.Values)
	}
	_, err = d.Query(ctx, `SELEC 1`)
	if !errors.As(err, &pe) || pe.Code != "42601" {
		t.Fatalf("syntax error = %v", err)
	}
	if _, err := d.Query(ctx, `SELECT ?`, struct{}{}); err == nil || !strings.Contains(err.Error(), "unsupported type") {
		t.Fatalf("struct argument: %v", err)
	}
}

func TestPostgresConcurrent(t *testing.T) {
	d := openTestPG(t, 0)
	tb := pgTable(t, d)
	mustExec(t, d, `CREATE TABLE `+tb+` (k int PRIMARY KEY, n bigint)`)
	mustExec(t, d, `INSERT INTO `+tb+` VALUES (1, 0)`)
	const goroutines, each = 6, 20
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*each)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := 0; i < each; i++ {
				err := d.Tx(ctx, func(tx Tx) error {
					r, err := tx.Query(ctx, `SELECT n FROM `+tb+` WHERE k = ? FOR UPDATE`, 1)
					if err != nil {
						return err
					}
					_, err = tx.Exec(ctx, `UPDATE `+tb+` SET n = ? WHERE k = 1`, r.Values[0][0].(int64)+1)
					return err
				})
				if err != nil {
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
	if r := mustQuery(t, d, `SELECT n FROM `+tb); r.Values[0][0] != int64(goroutines*each) {
		t.Fatalf("n = %v, want %d", r.Values[0][0], goroutines*each)
	}
}

func TestPostgresTimeout(t *testing.T) {
	d := openTestPG(t, 200*time.Millisecond)
	start := time.Now()
	_, err := d.Query(context.Background(), `SELECT pg_sleep(10)`)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pg_sleep(10): %v, want a deadline error", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("the timeout took %v", el)
	}
	// The pool is usable again: the cancelled connection is replaced. A new
	// connection may itself take longer than 200 ms on a loaded machine, so
	// a few attempts are allowed.
	for attempt := 1; ; attempt++ {
		_, err := d.Query(context.Background(), `SELECT 1`)
		if err == nil {
			break
		}
		if attempt == 20 {
			t.Fatalf("SELECT 1 after a timeout, 20 attempts: %v", err)
		}
	}
}

func TestPostgresBadDSN(t *testing.T) {
	for _, dsn := range []string{"postgres://127.0.0.1:notaport/test", "host=127.0.0.1 sslmode=bogus", "postgres://%zz"} {
		if _, err := Open(context.Background(), Config{Name: "pg", Driver: "postgres", DSN: dsn}); err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
		} else if !strings.Contains(err.Error(), `db "pg": open: `) {
			t.Errorf("Open(%q): %v", dsn, err)
		}
	}
}

// TestPostgresDownAtStart opens a pool on a port where nothing listens:
// Open succeeds, each call fails, and once a server answers there (a
// proxy to the test server) calls work, with the same pool.
func TestPostgresDownAtStart(t *testing.T) {
	d, err := Open(context.Background(), Config{Name: "pg", Driver: "postgres",
		DSN: "postgres://127.0.0.1:1/test", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatalf("Open with the server down: %v", err)
	}
	if _, err := d.Query(context.Background(), "SELECT 1"); err == nil || !strings.Contains(err.Error(), `db "pg"`) {
		t.Fatalf("query with the server down: %v", err)
	}
	if _, err := d.Exec(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("exec with the server down succeeded")
	}
	if err := d.Tx(context.Background(), func(Tx) error { return nil }); err == nil {
		t.Fatal("tx with the server down succeeded")
	}
	d.Close()

	openTestPG(t, 0) // skips when there is no server to come back
	pc, err := pgconn.ParseConfig(pgDSN())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	dsn := fmt.Sprintf("host=127.0.0.1 port=%s dbname='%s' user='%s'", port, pc.Database, pc.User)
	if pc.Password != "" {
		dsn += fmt.Sprintf(" password='%s'", pc.Password)
	}
	d, err = Open(context.Background(), Config{Name: "pg", Driver: "postgres", DSN: dsn, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Query(context.Background(), "SELECT 1"); err == nil {
		t.Fatal("query before the server is up succeeded")
	}
	stop := proxy(t, addr, net.JoinHostPort(pc.Host, fmt.Sprint(pc.Port)))
	defer stop()
	r, err := d.Query(context.Background(), "SELECT ?::int + 1", 41)
	if err != nil {
		t.Fatalf("query after the server came back: %v", err)
	}
	if r.Values[0][0] != int64(42) {
		t.Fatalf("got %v", r.Values)
	}
}

// proxy forwards connections to addr to target until stopped.
func proxy(t *testing.T, addr, target string) (stop func()) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, c, u)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); io.Copy(u, c); u.Close() }()
			go func() { defer wg.Done(); io.Copy(c, u); c.Close() }()
		}
	}()
	return func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	}
}
