package reload

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/db"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/scripting"
)

// dbGateway starts, without serving, a gateway for the config src in a
// temporary folder, its databases in a set given to its manager.
func dbGateway(t *testing.T, src string) (m *Manager, set *db.Set, dir string) {
	t.Helper()
	dir = t.TempDir()
	write(t, dir, "echo.lua", "return { message = function(c, d) c:send(d) end }\n")
	write(t, dir, "config.yaml", src)
	cfg, err := config.Load(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	set = db.NewSet(log)
	t.Cleanup(func() { set.Close() })
	cfgs, err := DatabaseConfigs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Apply(context.Background(), cfgs); err != nil {
		t.Fatal(err)
	}
	met := metrics.New()
	services := map[string]*scripting.Service{}
	gw := map[string]gateway.Service{}
	for _, ep := range cfg.Endpoints {
		s, err := scripting.New(ep, log, met.Endpoint(ep.Path), scripting.WithDatabases(set))
		if err != nil {
			t.Fatal(err)
		}
		services[ep.Path], gw[ep.Path] = s, s
	}
	srv, err := gateway.New(cfg, gw, log, met)
	if err != nil {
		t.Fatal(err)
	}
	m = New(cfg, services, srv, log, met)
	m.UseDatabases(set)
	t.Cleanup(func() {
		for _, s := range m.Services() {
			s.Close()
		}
		m.Close(context.Background())
	})
	return m, set, dir
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func dbConfig(databases string, endpoints string) string {
	return "databases:\n" + databases + "endpoints:\n  - path: /echo\n    script: echo.lua\n    databases: [a]\n" + endpoints
}

func TestReloadAppliesDatabasesBeforeEndpoints(t *testing.T) {
	m, set, dir := dbGateway(t, dbConfig("  a: {driver: sqlite, dsn: a.db}\n", ""))
	a, _ := set.Get("a")

	// A database added with an endpoint that uses it.
	write(t, dir, "config.yaml", dbConfig("  a: {driver: sqlite, dsn: a.db}\n  b: {driver: sqlite, dsn: sub/b.db}\n",
		"  - path: /b\n    script: echo.lua\n    databases: [b]\n"))
	if err := m.ReloadConfig(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(set.Names(), ","); got != "a,b" {
		t.Errorf("databases after adding b: %s", got)
	}
	if a2, _ := set.Get("a"); a2 != a {
		t.Error("the reload replaced an unchanged database's pool")
	}
	if _, err := os.Stat(filepath.Join(dir, "sub", "b.db")); err != nil {
		t.Errorf("b's file: %v", err)
	}
	if m.Services()["/b"] == nil {
		t.Error("the endpoint added with b does not run")
	}

	// Only the databases change: the reload applies them alone.
	write(t, dir, "config.yaml", dbConfig("  a: {driver: sqlite, dsn: a.db}\n  b: {driver: sqlite, dsn: sub/b.db, timeout: 1s}\n",
		"  - path: /b\n    script: echo.lua\n    databases: [b]\n"))
	b, _ := set.Get("b")
	if err := m.ReloadConfig(); err != nil {
		t.Fatal(err)
	}
	if b2, _ := set.Get("b"); b2 == b {
		t.Error("b's changed timeout kept its pool")
	}
}

func TestReloadRefusedWhenADatabaseFailsToOpen(t *testing.T) {
	m, set, dir := dbGateway(t, dbConfig("  a: {driver: sqlite, dsn: a.db}\n", ""))
	a, _ := set.Get("a")
	write(t, dir, "in-the-way", "")
	tests := []struct {
		name, databases, want string
	}{
		{"a file in the way", "  c: {driver: sqlite, dsn: in-the-way/c.db}\n", `databases: db "c": open: create the database's folder`},
		{"dsn_env unset", "  c: {driver: postgres, dsn_env: MOONGATE_RELOAD_TEST_UNSET}\n",
			`database "c": dsn_env: the environment variable MOONGATE_RELOAD_TEST_UNSET is not set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The database a changes too, and an endpoint is added: neither happens.
			write(t, dir, "config.yaml", dbConfig("  a: {driver: sqlite, dsn: a.db, pool: 2}\n"+tt.databases,
				"  - path: /more\n    script: echo.lua\n"))
			err := m.ReloadConfig()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("reload: %v, want an error with %q", err, tt.want)
			}
			if status, _ := m.Status(); !strings.Contains(status.LastError, tt.want) {
				t.Errorf("status: %+v", status)
			}
			if got := strings.Join(set.Names(), ","); got != "a" {
				t.Errorf("databases: %s", got)
			}
			if a2, _ := set.Get("a"); a2 != a {
				t.Error("a refused reload replaced a pool")
			}
			if m.Services()["/more"] != nil {
				t.Error("a refused reload added an endpoint")
			}
		})
	}
}

func TestReloadRestoresDatabasesWhenEndpointsFail(t *testing.T) {
	m, set, dir := dbGateway(t, dbConfig("  a: {driver: sqlite, dsn: a.db}\n", ""))
	// start raises: the script loads (so the check passes), but its
	// service cannot start, after the databases were applied.
	write(t, dir, "bad.lua", "return { start = function() error('no') end, message = function() end }\n")
	write(t, dir, "config.yaml", dbConfig("  a: {driver: sqlite, dsn: a.db}\n  c: {driver: sqlite, dsn: c.db}\n",
		"  - path: /bad\n    script: bad.lua\n    databases: [c]\n"))
	if err := m.ReloadConfig(); err == nil || !strings.Contains(err.Error(), "endpoint /bad") {
		t.Fatalf("reload: %v", err)
	}
	if got := strings.Join(set.Names(), ","); got != "a" {
		t.Errorf("databases after the refused reload: %s", got)
	}
	a, _ := set.Get("a")
	if _, err := a.Query(context.Background(), "SELECT 1"); err != nil {
		t.Errorf("a after the refused reload: %v", err)
	}
}
