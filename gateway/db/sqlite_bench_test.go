package db

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkSQLiteExec measures one autocommit INSERT through DB.Exec on a
// SQLite file, as the chat's handlers call it: unprepared and alone (as
// before the cache), prepared and alone (the cache, no group commit), and
// with group commit; each from one goroutine (serial: what group commit
// must not slow) and from 24 × GOMAXPROCS goroutines at once (parallel).
// It reports rows/s and, with group commit, the statements per committed
// batch.
func BenchmarkSQLiteExec(b *testing.B) {
	for _, c := range []struct {
		name string
		opts sqliteOptions
	}{
		{"unprepared", sqliteOptions{noCache: true, noGroupCommit: true}},
		{"prepared", sqliteOptions{noGroupCommit: true}},
		{"groupcommit", sqliteOptions{}},
	} {
		for _, parallel := range []bool{false, true} {
			name := c.name + "/serial"
			if parallel {
				name = c.name + "/parallel"
			}
			b.Run(name, func(b *testing.B) { benchSQLiteExec(b, c.opts, parallel) })
		}
	}
}

func benchSQLiteExec(b *testing.B, opts sqliteOptions, parallel bool) {
	{
		{
			d, err := openSQLiteWith(context.Background(), Config{
				Name: "bench", Driver: "sqlite", DSN: filepath.Join(b.TempDir(), "bench.db"),
				Timeout: DefaultTimeout, MaxConns: DefaultMaxConns,
			}, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			ctx := context.Background()
			if _, err := d.Exec(ctx, `CREATE TABLE m (id INTEGER PRIMARY KEY, room TEXT NOT NULL, body TEXT NOT NULL)`); err != nil {
				b.Fatal(err)
			}
			insert := func() bool {
				_, err := d.Exec(ctx, `INSERT INTO m (room, body) VALUES (?, ?)`, "room1", `{"nick":"c1","text":"hello there"}`)
				if err != nil {
					b.Error(err)
				}
				return err == nil
			}
			b.ResetTimer()
			if !parallel {
				for range b.N {
					if !insert() {
						return
					}
				}
			} else {
				b.SetParallelism(24)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() && insert() {
					}
				})
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			if gc := d.(*sqliteDB).gc; gc != nil && gc.batches.Load() > 0 {
				b.ReportMetric(float64(gc.batched.Load())/float64(gc.batches.Load()), "rows/batch")
			}
		}
	}
}
