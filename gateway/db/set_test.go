package db

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newTestSet returns a set logging into the returned buffer, closed when
// the test ends.
func newTestSet(t *testing.T) (*Set, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	s := NewSet(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, &logs
}

// waitFor waits for cond, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// closedPool reports whether d refuses statements because it is closed.
func closedPool(d DB) bool {
	_, err := d.Query(context.Background(), "SELECT 1")
	return err != nil && strings.Contains(err.Error(), "closed")
}

func TestSetSQLiteCreatesItsFolder(t *testing.T) {
	s, _ := newTestSet(t)
	file := filepath.Join(t.TempDir(), "data", "deeper", "moongate.db")
	if err := s.Apply(context.Background(), []Config{{Name: "main", Driver: "sqlite", DSN: file}}); err != nil {
		t.Fatal(err)
	}
	d, ok := s.Get("main")
	if !ok {
		t.Fatal("main not in the set")
	}
	mustExec(t, d, "CREATE TABLE t (x INTEGER)")
	if info, err := os.Stat(file); err != nil || !info.Mode().IsRegular() {
		t.Fatalf("database file: %v", err)
	}
}

func TestSetApplyKeepsSwapsAndCloses(t *testing.T) {
	s, _ := newTestSet(t)
	dir := t.TempDir()
	lite := func(name, file string) Config {
		return Config{Name: name, Driver: "sqlite", DSN: filepath.Join(dir, file)}
	}
	ctx := context.Background()
	if err := s.Apply(ctx, []Config{lite("a", "a.db"), lite("b", "b.db"), lite("c", "c.db")}); err != nil {
		t.Fatal(err)
	}
	a1, _ := s.Get("a")
	b1, _ := s.Get("b")
	c1, _ := s.Get("c")
	mustExec(t, b1, "CREATE TABLE t (x INTEGER)")

	// Readers look databases up all along; -race watches them.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
				s.Get("a")
				s.Names()
			}
		}
	}()
	err := s.Apply(ctx, []Config{lite("a", "a.db"), lite("b", "b2.db"), lite("d", "d.db")})
	close(stop)
	readers.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Names(), ","); got != "a,b,d" {
		t.Fatalf("names after apply: %s", got)
	}
	if a2, _ := s.Get("a"); a2 != a1 {
		t.Error("an unchanged database got a new pool")
	}
	mustQuery(t, a1, "SELECT 1")
	if b2, _ := s.Get("b"); b2 == b1 {
		t.Error("a database whose dsn changed kept its pool")
	}
	if _, ok := s.Get("c"); ok {
		t.Error("a removed database is still in the set")
	}
	waitFor(t, "the replaced pool closed", func() bool { return closedPool(b1) })
	waitFor(t, "the removed pool closed", func() bool { return closedPool(c1) })
}

func TestSetFailedApplyChangesNothing(t *testing.T) {
	s, _ := newTestSet(t)
	dir := t.TempDir()
	ctx := context.Background()
	a := Config{Name: "a", Driver: "sqlite", DSN: filepath.Join(dir, "a.db")}
	if err := s.Apply(ctx, []Config{a}); err != nil {
		t.Fatal(err)
	}
	a1, _ := s.Get("a")
	// A regular file where the folder of "blocked" should be.
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		bad  Config
		want string
	}{
		{"unknown driver", Config{Name: "x", Driver: "mysql", DSN: "x"}, `db "x": open: unknown driver "mysql"`},
		{"malformed postgres DSN", Config{Name: "pg", Driver: "postgres", DSN: "postgres://%zz"}, `db "pg": open: `},
		{"sqlite folder that cannot be made", Config{Name: "blocked", Driver: "sqlite", DSN: filepath.Join(dir, "file", "x.db")}, `db "blocked": open: create the database's folder`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changedA := a
			changedA.Timeout = time.Second
			b := Config{Name: "b", Driver: "sqlite", DSN: filepath.Join(dir, "b.db")}
			err := s.Apply(ctx, []Config{changedA, b, tt.bad})
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Apply: %v, want an error starting %q", err, tt.want)
			}
			if got := strings.Join(s.Names(), ","); got != "a" {
				t.Errorf("names: %s", got)
			}
			if a2, _ := s.Get("a"); a2 != a1 {
				t.Error("a failed apply replaced a pool")
			}
			mustQuery(t, a1, "SELECT 1")
		})
	}
	if err := s.Apply(ctx, []Config{a, a}); err == nil || !strings.Contains(err.Error(), `"a" is configured twice`) {
		t.Errorf("a name twice: %v", err)
	}
}

func TestSetClose(t *testing.T) {
	var logs syncBuffer
	s := NewSet(slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	if err := s.Apply(ctx, []Config{{Name: "a", Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "a.db")}}); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Get("a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !closedPool(a) {
		t.Error("Close left a pool open")
	}
	if _, ok := s.Get("a"); ok || len(s.Names()) != 0 {
		t.Error("a closed set still holds databases")
	}
	if err := s.Apply(ctx, nil); err == nil {
		t.Error("a closed set took an Apply")
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestSetUnreachablePostgresIsAWarning(t *testing.T) {
	s, logs := newTestSet(t)
	dsn := "postgres://" + freeAddr(t) + "/test"
	if err := s.Apply(context.Background(), []Config{{Name: "pg", Driver: "postgres", DSN: dsn, Timeout: 2 * time.Second}}); err != nil {
		t.Fatalf("an unreachable server failed the apply: %v", err)
	}
	if _, ok := s.Get("pg"); !ok {
		t.Fatal("the unreachable database is not in the set")
	}
	const warning = `msg="database unreachable`
	waitFor(t, "the warning", func() bool { return strings.Contains(logs.String(), warning) })
	if n := strings.Count(logs.String(), warning); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "database=pg") {
		t.Errorf("the warning does not name the database:\n%s", logs)
	}
}

func TestSetPostgres(t *testing.T) {
	openTestPG(t, 0) // skips (or fails under CI=true) without a server
	s, logs := newTestSet(t)
	cfg := Config{Name: "pg", Driver: "postgres", DSN: pgDSN()}
	if err := s.Apply(context.Background(), []Config{cfg}); err != nil {
		t.Fatal(err)
	}
	d, ok := s.Get("pg")
	if !ok {
		t.Fatal("pg not in the set")
	}
	if r := mustQuery(t, d, "SELECT ?::int + 1 AS n", 41); r.Values[0][0] != int64(42) {
		t.Errorf("got %v", r.Values)
	}
	waitFor(t, "the reachability check", func() bool { return strings.Contains(logs.String(), `msg="database reachable"`) })
	if strings.Contains(logs.String(), "unreachable") {
		t.Errorf("a reachable server was reported unreachable:\n%s", logs)
	}
	cfg.MaxConns = 2
	if err := s.Apply(context.Background(), []Config{cfg}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the replaced pool closed", func() bool { return closedPool(d) })
	d2, _ := s.Get("pg")
	mustQuery(t, d2, "SELECT 1")
}
