// Package dbtest opens real databases for tests: a fresh SQLite file, and
// the PostgreSQL server of the test machine.
package dbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/db"
)

// PostgresDSN is the test server: MOONGATE_TEST_POSTGRES, or a local one
// with trust authentication and a database named test.
func PostgresDSN() string {
	if s := os.Getenv("MOONGATE_TEST_POSTGRES"); s != "" {
		return s
	}
	return "postgres://127.0.0.1:5432/test"
}

// Postgres opens the test server as a database named name, closed when the
// test ends. It skips the test when the server cannot be reached, and fails
// it instead when CI=true.
func Postgres(t testing.TB, name string) db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), db.Config{Name: name, Driver: "postgres", DSN: PostgresDSN()})
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
			t.Fatalf("PostgreSQL at %s: %v", PostgresDSN(), err)
		}
		t.Skipf("PostgreSQL at %s unreachable, skipping (set CI=true to fail instead): %v", PostgresDSN(), err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// SQLite opens a fresh SQLite file in a temporary folder as a database
// named name, closed when the test ends.
func SQLite(t testing.TB, name string) db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), db.Config{Name: name, Driver: "sqlite", DSN: filepath.Join(t.TempDir(), name+".db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// Table returns a table name unique to this run of t, dropped from d when
// the test ends.
func Table(t testing.TB, d db.DB) string {
	t.Helper()
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

// Set is a fixed set of open databases by name, for services under test.
type Set map[string]db.DB

// Get returns the database named name.
func (s Set) Get(name string) (db.DB, bool) {
	d, ok := s[name]
	return d, ok
}
