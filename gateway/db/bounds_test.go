package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/moongate/moongate/gateway/db"
	"github.com/moongate/moongate/gateway/db/dbtest"
)

func TestResultsAreBounded(t *testing.T) {
	for name, open := range map[string]func(testing.TB, string) db.DB{"sqlite": dbtest.SQLite, "postgres": dbtest.Postgres} {
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
			_, err = d.Query(ctx, "SELECT ? AS big, ? AS more", strings.Repeat("x", db.MaxResultBytes/2), strings.Repeat("y", db.MaxResultBytes/2+1))
			if !errors.Is(err, db.ErrResultTooLarge) {
				t.Errorf("%d bytes: got %v, want ErrResultTooLarge", db.MaxResultBytes+1, err)
			}
		})
	}
}
