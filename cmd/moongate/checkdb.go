package main

import (
	"context"
	"fmt"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/db"
)

// standIns are the databases `moongate check` lends the scripts' start
// handlers instead of the configured ones, which it never opens: a private
// in-memory SQLite database for each SQLite one, so that start's
// statements really run (on an empty database) and a typo in them is
// caught; and a dry run for each PostgreSQL one, whose statements are not
// sent and come back with no rows.
type standIns map[string]db.DB

// Get returns the stand-in for the database called name.
func (s standIns) Get(name string) (db.DB, bool) {
	d, ok := s[name]
	return d, ok
}

// Close closes the stand-ins.
func (s standIns) Close() {
	for _, d := range s {
		d.Close()
	}
}

// openStandIns returns stand-ins for every database cfg declares.
func openStandIns(ctx context.Context, cfg *config.Config) (standIns, error) {
	s := standIns{}
	for _, d := range cfg.Databases {
		if d.Driver != config.DriverSQLite {
			s[d.Name] = dryRun(d.Name)
			continue
		}
		mem, err := db.Open(ctx, db.Config{Name: d.Name, Driver: config.DriverSQLite, DSN: ":memory:", Timeout: d.Timeout})
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("database %q: a stand-in: %w", d.Name, err)
		}
		s[d.Name] = mem
	}
	return s, nil
}

// dryRun is a database that sends nothing anywhere: every statement
// succeeds with no rows.
type dryRun string

func (d dryRun) Query(context.Context, string, ...any) (*db.Rows, error) { return &db.Rows{}, nil }
func (d dryRun) Exec(context.Context, string, ...any) (db.Result, error) { return db.Result{}, nil }
func (d dryRun) Tx(_ context.Context, fn func(db.Tx) error) error        { return fn(d) }
func (d dryRun) Close() error                                            { return nil }
func (d dryRun) Name() string                                            { return string(d) }
