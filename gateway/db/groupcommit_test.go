package db

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// heldSQLite is a SQLite file whose committer, once armed (arm), stops
// at the next batch's first request until released (open); entered
// receives when it stops.
type heldSQLite struct {
	d       *sqliteDB
	entered chan struct{}
	mu      sync.Mutex
	gate    chan struct{} // nil: not armed
}

func openHeldSQLite(t *testing.T, timeout time.Duration) *heldSQLite {
	t.Helper()
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	h := &heldSQLite{entered: make(chan struct{}, 1)}
	hold := func() {
		h.mu.Lock()
		g := h.gate
		h.mu.Unlock()
		if g == nil {
			return
		}
		h.entered <- struct{}{}
		<-g
	}
	d, err := openSQLiteWith(context.Background(), Config{
		Name: "lite", Driver: "sqlite",
		DSN:      filepath.Join(t.TempDir(), "test.db"),
		Timeout:  timeout,
		MaxConns: DefaultMaxConns,
	}, sqliteOptions{hold: hold})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d.(*sqliteDB)
	t.Cleanup(func() {
		h.open()
		d.Close()
	})
	return h
}

// arm makes the committer stop at its next batch.
func (h *heldSQLite) arm() {
	h.mu.Lock()
	h.gate = make(chan struct{})
	h.mu.Unlock()
}

// open lets the committer run on, now and at every later batch.
func (h *heldSQLite) open() {
	h.mu.Lock()
	if h.gate != nil {
		close(h.gate)
		h.gate = nil
	}
	h.mu.Unlock()
}

// execResult is the outcome of one Exec run in its own goroutine.
type execResult struct {
	res Result
	err error
}

// goExec runs d.Exec in a goroutine; its outcome comes on the channel.
func goExec(ctx context.Context, d DB, q string, args ...any) <-chan execResult {
	ch := make(chan execResult, 1)
	go func() {
		res, err := d.Exec(ctx, q, args...)
		ch <- execResult{res, err}
	}()
	return ch
}

// queueBatch holds the committer with a first request (q, first...), then
// queues the others in order, each once the previous one is queued: the
// committer then takes them all in one batch, in this order, when opened.
func (h *heldSQLite) queueBatch(t *testing.T, q string, args [][]any, ctxs []context.Context) []<-chan execResult {
	t.Helper()
	out := make([]<-chan execResult, len(args))
	h.arm()
	for i, a := range args {
		ctx := context.Background()
		if ctxs != nil && ctxs[i] != nil {
			ctx = ctxs[i]
		}
		out[i] = goExec(ctx, h.d, q, a...)
		if i == 0 {
			<-h.entered
			continue
		}
		waitFor(t, fmt.Sprintf("request %d queued", i), func() bool { return len(h.d.gc.queue) == i })
	}
	return out
}

func TestPlainDML(t *testing.T) {
	for q, want := range map[string]bool{
		"INSERT INTO t VALUES (1)":                           true,
		"  -- note\n/* c */ insert into t values (?)":        true,
		"UPDATE t SET x = 1":                                 true,
		"DELETE FROM t":                                      true,
		"REPLACE INTO t VALUES (1);":                         true,
		"INSERT INTO t VALUES (1) RETURNING rowid":           true,
		"INSERT INTO t VALUES (1); DROP TABLE t":             false,
		"INSERT INTO t VALUES (';')":                         false, // conservative
		"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x": false,
		"CREATE TABLE t (x)":                                 false,
		"PRAGMA user_version = 3":                            false,
		"VACUUM":                                             false,
		"BEGIN":                                              false,
		"SELECT 1":                                           false,
		"-- only a comment":                                  false,
	} {
		if got := plainDML(q); got != want {
			t.Errorf("plainDML(%q) = %v, want %v", q, got, want)
		}
	}
}

// Writers in parallel: every Exec that returns nil has its row committed,
// visible at once to the read-only connections.
func TestSQLiteGroupCommitConcurrentWriters(t *testing.T) {
	d := openTestSQLite(t, 0).(*sqliteDB)
	mustExec(t, d, `CREATE TABLE g (id INTEGER PRIMARY KEY, w INTEGER, n INTEGER)`)
	const writers, each = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for n := range each {
				res, err := d.Exec(ctx, `INSERT INTO g (w, n) VALUES (?, ?)`, w, n)
				if err != nil {
					errs <- err
					return
				}
				r, err := d.Query(ctx, `SELECT w, n FROM g WHERE id = ?`, res.LastInsertID)
				if err != nil {
					errs <- err
					return
				}
				if len(r.Values) != 1 || r.Values[0][0] != int64(w) || r.Values[0][1] != int64(n) {
					errs <- fmt.Errorf("writer %d row %d: id %d reads %v", w, n, res.LastInsertID, r.Values)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if r := mustQuery(t, d, `SELECT count(*) FROM g`); r.Values[0][0] != int64(writers*each) {
		t.Fatalf("%v rows, want %d", r.Values[0][0], writers*each)
	}
	t.Logf("%d batches held %d of %d statements", d.gc.batches.Load(), d.gc.batched.Load(), writers*each)
}

// A statement of a batch that fails (UNIQUE) gets its error; the others
// of its batch are committed, each with its own LastInsertID.
func TestSQLiteGroupCommitBatchFailure(t *testing.T) {
	h := openHeldSQLite(t, 0)
	mustExec(t, h.d, `CREATE TABLE u (id INTEGER PRIMARY KEY, v TEXT UNIQUE)`)
	mustExec(t, h.d, `INSERT INTO u (id, v) VALUES (100, 'dup')`)
	vals := []string{"first", "a", "dup", "b", "c", "dup", "d"}
	args := make([][]any, len(vals))
	for i, v := range vals {
		args[i] = []any{v}
	}
	got := h.queueBatch(t, `INSERT INTO u (v) VALUES (?)`, args, nil)
	h.open()
	ids := map[int64]string{}
	for i, ch := range got {
		r := <-ch
		if vals[i] == "dup" {
			if r.err == nil || !strings.Contains(r.err.Error(), "UNIQUE") {
				t.Errorf("%s: got %+v, %v, want a UNIQUE error", vals[i], r.res, r.err)
			}
			continue
		}
		if r.err != nil || r.res.RowsAffected != 1 {
			t.Errorf("%s: got %+v, %v", vals[i], r.res, r.err)
			continue
		}
		ids[r.res.LastInsertID] = vals[i]
	}
	if b, n := h.d.gc.batches.Load(), h.d.gc.batched.Load(); b != 1 || n != 5 {
		t.Fatalf("%d batches of %d statements, want 1 of 5", b, n)
	}
	rows := mustQuery(t, h.d, `SELECT id, v FROM u WHERE v != 'dup' ORDER BY id`)
	if len(rows.Values) != 5 {
		t.Fatalf("rows = %v", rows.Values)
	}
	for _, row := range rows.Values {
		if ids[row[0].(int64)] != row[1] {
			t.Errorf("row %v: its caller was told id %d is %q", row, row[0], ids[row[0].(int64)])
		}
	}
}

// A caller whose context ends while its request waits gets its error at
// once, and its statement never runs.
func TestSQLiteGroupCommitCanceled(t *testing.T) {
	h := openHeldSQLite(t, 0)
	mustExec(t, h.d, `CREATE TABLE c (v TEXT)`)
	ctx, cancel := context.WithCancel(context.Background())
	got := h.queueBatch(t, `INSERT INTO c (v) VALUES (?)`,
		[][]any{{"first"}, {"canceled"}, {"after"}}, []context.Context{nil, ctx, nil})
	cancel()
	if r := <-got[1]; !errors.Is(r.err, context.Canceled) {
		t.Fatalf("canceled caller: %v, want context.Canceled", r.err)
	}
	h.open()
	for _, i := range []int{0, 2} {
		if r := <-got[i]; r.err != nil {
			t.Fatal(r.err)
		}
	}
	rows := mustQuery(t, h.d, `SELECT v FROM c ORDER BY rowid`)
	if len(rows.Values) != 2 || rows.Values[0][0] != "first" || rows.Values[1][0] != "after" {
		t.Fatalf("rows = %v", rows.Values)
	}

	// A deadline that passes while queued: the same.
	h2 := openHeldSQLite(t, 200*time.Millisecond)
	mustExec(t, h2.d, `CREATE TABLE c (v TEXT)`)
	h2.arm()
	first := goExec(context.Background(), h2.d, `INSERT INTO c (v) VALUES (?)`, "first")
	<-h2.entered
	if _, err := h2.d.Exec(context.Background(), `INSERT INTO c (v) VALUES (?)`, "late"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued past its timeout: %v, want DeadlineExceeded", err)
	}
	h2.open()
	if r := <-first; !errors.Is(r.err, context.DeadlineExceeded) {
		// Held past its own timeout too: not run.
		t.Fatalf("first: %v, want DeadlineExceeded", r.err)
	}
	if r := mustQuery(t, h2.d, `SELECT count(*) FROM c`); r.Values[0][0] != int64(0) {
		t.Fatalf("%v rows written by callers that timed out: %v", r.Values[0][0], mustQuery(t, h2.d, `SELECT v FROM c`).Values)
	}
}

// A statement interrupted by its caller's timeout inside a batch fails
// alone: SQLite then rolls back the whole transaction, and the statements
// that ran before it are run again with those after it, and committed.
func TestSQLiteGroupCommitInterrupted(t *testing.T) {
	h := openHeldSQLite(t, 0)
	mustExec(t, h.d, `CREATE TABLE i (v TEXT)`)
	h.arm()
	endless := `INSERT INTO i (v) SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c)`
	first := goExec(context.Background(), h.d, `INSERT INTO i (v) VALUES (?)`, "first")
	<-h.entered
	before := goExec(context.Background(), h.d, `INSERT INTO i (v) VALUES (?)`, "before")
	waitFor(t, "before queued", func() bool { return len(h.d.gc.queue) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	slow := goExec(ctx, h.d, endless)
	waitFor(t, "slow queued", func() bool { return len(h.d.gc.queue) == 2 })
	after := goExec(context.Background(), h.d, `INSERT INTO i (v) VALUES (?)`, "after")
	waitFor(t, "after queued", func() bool { return len(h.d.gc.queue) == 3 })
	h.open()
	if r := <-slow; !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("endless statement: %v, want DeadlineExceeded", r.err)
	}
	for name, ch := range map[string]<-chan execResult{"first": first, "before": before, "after": after} {
		if r := <-ch; r.err != nil {
			t.Errorf("%s: %v", name, r.err)
		}
	}
	rows := mustQuery(t, h.d, `SELECT v FROM i ORDER BY v`)
	if len(rows.Values) != 3 {
		t.Fatalf("rows = %v, want after, before, first", rows.Values)
	}
}

// A full queue makes a caller wait for room within its timeout; one that
// gets none fails with the timeout's error and its statement never runs.
func TestSQLiteGroupCommitQueueFull(t *testing.T) {
	h := openHeldSQLite(t, 0)
	mustExec(t, h.d, `CREATE TABLE f (v TEXT)`)
	h.arm()
	results := []<-chan execResult{goExec(context.Background(), h.d, `INSERT INTO f (v) VALUES (?)`, "first")}
	<-h.entered
	for i := range MaxGroupCommitQueue {
		results = append(results, goExec(context.Background(), h.d, `INSERT INTO f (v) VALUES (?)`, fmt.Sprint(i)))
	}
	waitFor(t, "a full queue", func() bool { return len(h.d.gc.queue) == MaxGroupCommitQueue })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := h.d.Exec(ctx, `INSERT INTO f (v) VALUES (?)`, "no room"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("past a full queue: %v, want DeadlineExceeded", err)
	}
	h.open()
	for _, ch := range results {
		if r := <-ch; r.err != nil {
			t.Fatal(r.err)
		}
	}
	if r := mustQuery(t, h.d, `SELECT count(*) FROM f WHERE v != 'no room'`); r.Values[0][0] != int64(MaxGroupCommitQueue+1) {
		t.Fatalf("%v rows, want %d", r.Values[0][0], MaxGroupCommitQueue+1)
	}
	if r := mustQuery(t, h.d, `SELECT count(*) FROM f WHERE v = 'no room'`); r.Values[0][0] != int64(0) {
		t.Fatal("the statement that found no room ran")
	}
	if b := h.d.gc.batches.Load(); b < MaxGroupCommitQueue/MaxGroupCommitBatch {
		t.Fatalf("%d batches for %d statements, want at least %d", b, MaxGroupCommitQueue+1, MaxGroupCommitQueue/MaxGroupCommitBatch)
	}
}

// Close answers the requests queued with an error, runs none of them, and
// stops the committer.
func TestSQLiteGroupCommitClose(t *testing.T) {
	h := openHeldSQLite(t, 0)
	mustExec(t, h.d, `CREATE TABLE q (v TEXT)`)
	got := h.queueBatch(t, `INSERT INTO q (v) VALUES (?)`, [][]any{{"a"}, {"b"}, {"c"}, {"d"}}, nil)
	closed := make(chan error, 1)
	go func() { closed <- h.d.Close() }()
	waitFor(t, "Close to begin", func() bool {
		select {
		case <-h.d.gc.stop:
			return true
		default:
			return false
		}
	})
	h.open()
	for i, ch := range got {
		if r := <-ch; !errors.Is(r.err, errClosed) || !strings.Contains(r.err.Error(), `db "lite"`) {
			t.Errorf("request %d: %v, want the database closed", i, r.err)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.d.gc.exited:
	default:
		t.Fatal("the committer runs on after Close")
	}
	if _, err := h.d.Exec(context.Background(), `INSERT INTO q (v) VALUES (?)`, "late"); err == nil {
		t.Fatal("Exec after Close succeeded")
	}
}

// Statements other than plain DML do not go through the committer: they
// run while it is held.
func TestSQLiteGroupCommitOnlyDML(t *testing.T) {
	h := openHeldSQLite(t, 0)
	mustExec(t, h.d, `CREATE TABLE o (v TEXT)`)
	h.arm()
	held := goExec(context.Background(), h.d, `INSERT INTO o (v) VALUES (?)`, "held")
	<-h.entered
	for _, q := range []string{
		`CREATE TABLE o2 (v TEXT)`,
		`CREATE INDEX o_v ON o (v)`,
		`PRAGMA user_version = 7`,
		`WITH x(v) AS (SELECT 'with') INSERT INTO o (v) SELECT v FROM x`,
		`INSERT INTO o2 (v) VALUES ('script'); INSERT INTO o2 (v) VALUES ('two')`,
	} {
		mustExec(t, h.d, q)
	}
	if r := mustQuery(t, h.d, `SELECT count(*) FROM o2`); r.Values[0][0] != int64(2) {
		t.Fatalf("script wrote %v rows", r.Values[0][0])
	}
	h.open()
	if r := <-held; r.err != nil {
		t.Fatal(r.err)
	}
	// Inside a transaction, DML runs on the transaction, not through the
	// committer (which would wait for the writer the transaction holds).
	err := h.d.Tx(context.Background(), func(tx Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO o (v) VALUES (?)`, "tx")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if r := mustQuery(t, h.d, `SELECT count(*) FROM o`); r.Values[0][0] != int64(3) {
		t.Fatalf("%v rows in o, want 3", r.Values[0][0])
	}
}

// The statement cache holds at most MaxCachedStatements; an evicted
// statement still in use is closed only when released.
func TestSQLiteStatementCache(t *testing.T) {
	d := openTestSQLite(t, 0).(*sqliteDB)
	mustExec(t, d, `CREATE TABLE s (v INTEGER)`)
	ctx := context.Background()
	held, err := d.wcache.get(ctx, `INSERT INTO s (v) VALUES (?)`)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 * MaxCachedStatements {
		mustExec(t, d, fmt.Sprintf(`INSERT INTO s (v) VALUES (%d)`, i))
		mustQuery(t, d, fmt.Sprintf(`SELECT v FROM s WHERE v = %d`, i))
	}
	if n := d.wcache.len(); n != MaxCachedStatements {
		t.Fatalf("writer cache holds %d, want %d", n, MaxCachedStatements)
	}
	if n := d.rcache.len(); n != MaxCachedStatements {
		t.Fatalf("reader cache holds %d, want %d", n, MaxCachedStatements)
	}
	if _, err := held.st.ExecContext(ctx, -1); err != nil {
		t.Fatalf("an evicted statement in use was closed: %v", err)
	}
	d.wcache.release(held)
	if _, err := held.st.ExecContext(ctx, -2); err == nil {
		t.Fatal("an evicted statement was not closed when released")
	}
	// Cached statements see a changed schema.
	mustExec(t, d, `INSERT INTO s (v) VALUES (?)`, 1000)
	mustExec(t, d, `ALTER TABLE s ADD COLUMN w TEXT DEFAULT 'x'`)
	mustExec(t, d, `INSERT INTO s (v) VALUES (?)`, 1001)
	if r := mustQuery(t, d, `SELECT w FROM s WHERE v = ?`, 1001); len(r.Values) != 1 || r.Values[0][0] != "x" {
		t.Fatalf("after ALTER: %v", r.Values)
	}
}
