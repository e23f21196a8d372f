package main

import (
	"context"
	"fmt"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/db"
)

// standIns are the databases `moongate check` lends the scripts' start
// handlers instead of the configured SQLite ones, which it never opens: a
// private in-memory SQLite database each, so that start's statements
// really run (on an empty database) and a typo in them is caught.
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

// openStandIns returns stand-ins for the SQLite databases cfg declares,
// and with servers for the others too (PostgreSQL stood in for by SQLite:
// what `moongate test` lends, where SQL kept portable runs the same).
func openStandIns(ctx context.Context, cfg *config.Config, servers bool) (standIns, error) {
	s := standIns{}
	for _, d := range cfg.Databases {
		if d.Driver != config.DriverSQLite && !servers {
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

// serverDatabase returns the name of a database ep uses that is not
// SQLite (a PostgreSQL server, which check does not reach), or "".
func serverDatabase(cfg *config.Config, ep config.Endpoint) string {
	for _, name := range ep.Databases {
		if d, ok := cfg.Database(name); ok && d.Driver != config.DriverSQLite {
			return name
		}
	}
	return ""
}
