package db_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/db"
	"github.com/moongate/moongate/gateway/db/dbtest"
)

func TestResultsAreBounded(t *testing.T) {
	// Values past MaxResultBytes, made by the server (so that 16 MiB need not
	// be sent first: on a loaded machine that alone can take the timeout).
	big := map[string]string{
		"sqlite":   "SELECT replace(hex(zeroblob(?)), '00', 'xx') AS big, replace(hex(zeroblob(?)), '00', 'yy') AS more",
		"postgres": "SELECT repeat('xx', ?) AS big, repeat('yy', ?) AS more",
	}
	// Reading 16 MiB, under -race on a loaded machine, can take longer
	// than the default statement timeout.
	const timeout = 2 * time.Minute
	open := map[string]func(testing.TB, string) db.DB{
		"sqlite": func(t testing.TB, name string) db.DB {
			d, err := db.Open(context.Background(), db.Config{Name: name, Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "b.db"), Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			return d
		},
		"postgres": func(t testing.TB, name string) db.DB { return dbtest.PostgresTimeout(t, name, timeout) },
	}
	for name, open := range open {
		t.Run(name, func(t *testing.T) {
			d := open(t, "main")
			ctx := context.Background()
			series := "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) SELECT i FROM n"
			rows, err := d.Query(ctx, fmt.Sprintf(series, db.MaxResultRows))
			if err != nil || len(rows.Values) != db.MaxResultRows {
				t.Fatalf("%d rows: %v", db.MaxResultRows, err)
			}
			_, err = d.Query(ctx, fmt.Sprintf(series, db.MaxResultRows+1))
			if !errors.Is(err, db.ErrResultTooLarge) || !strings.Contains(err.Error(), "select less") {
				t.Errorf("%d rows: got %v, want ErrResultTooLarge", db.MaxResultRows+1, err)
			}
			_, err = d.Query(ctx, big[name], db.MaxResultBytes/4, db.MaxResultBytes/4+1)
			if !errors.Is(err, db.ErrResultTooLarge) {
				t.Errorf("%d bytes: got %v, want ErrResultTooLarge", db.MaxResultBytes+1, err)
			}
		})
	}
}
