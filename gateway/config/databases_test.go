package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDatabases(t *testing.T) {
	dir := workdir(t)
	file := filepath.Join(dir, "c.yaml")
	cfg, err := Parse(file, []byte(`databases:
  main: {driver: sqlite, dsn: data/moongate.db}
  abs: {driver: sqlite, dsn: /var/lib/x.db, pool: 2, timeout: 1s}
  mem: {driver: sqlite, dsn: ":memory:"}
  uri: {driver: sqlite, dsn: "file:rel.db?cache=shared"}
  pg: {driver: postgres, dsn: "postgres://u@127.0.0.1:5432/test", pool: 8}
  pgkv: {driver: postgres, dsn: "host=127.0.0.1 dbname=test"}
  fromenv: {driver: postgres, dsn_env: MOONGATE_PG}
endpoints:
  - path: /echo
    script: echo.lua
    databases: [main, pg]
    http:
      allow: ["https://api.example.com/v1/", "http://127.0.0.1:8081"]
      timeout: 2s
      max_response_bytes: 64KiB
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Database{
		{Line: 2, Name: "main", Driver: "sqlite", DSN: filepath.Join(dir, "data", "moongate.db"), Timeout: DefaultDBTimeout},
		{Line: 3, Name: "abs", Driver: "sqlite", DSN: "/var/lib/x.db", Pool: 2, Timeout: time.Second},
		{Line: 4, Name: "mem", Driver: "sqlite", DSN: ":memory:", Timeout: DefaultDBTimeout},
		{Line: 5, Name: "uri", Driver: "sqlite", DSN: "file:rel.db?cache=shared", Timeout: DefaultDBTimeout},
		{Line: 6, Name: "pg", Driver: "postgres", DSN: "postgres://u@127.0.0.1:5432/test", Pool: 8, Timeout: DefaultDBTimeout},
		{Line: 7, Name: "pgkv", Driver: "postgres", DSN: "host=127.0.0.1 dbname=test", Timeout: DefaultDBTimeout},
		{Line: 8, Name: "fromenv", Driver: "postgres", DSNEnv: "MOONGATE_PG", Timeout: DefaultDBTimeout},
	}
	if !reflect.DeepEqual(cfg.Databases, want) {
		t.Errorf("databases:\ngot  %+v\nwant %+v", cfg.Databases, want)
	}
	ep := cfg.Endpoints[0]
	if !reflect.DeepEqual(ep.Databases, []string{"main", "pg"}) {
		t.Errorf("endpoint databases: %q", ep.Databases)
	}
	wantHTTP := HTTP{Allow: []string{"https://api.example.com/v1/", "http://127.0.0.1:8081"}, Timeout: 2 * time.Second, MaxResponseBytes: 64 << 10}
	if !reflect.DeepEqual(ep.HTTP, wantHTTP) {
		t.Errorf("http: got %+v, want %+v", ep.HTTP, wantHTTP)
	}
	if d, ok := cfg.Database("pg"); !ok || d.Pool != 8 {
		t.Errorf("Database(pg) = %+v, %v", d, ok)
	}
	if _, ok := cfg.Database("nope"); ok {
		t.Error("Database(nope) found")
	}
}

func TestHTTPDefaultsAndNoDatabases(t *testing.T) {
	dir := workdir(t)
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte("endpoints: [{path: /echo, script: echo.lua, databases: []}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ep := cfg.Endpoints[0]
	if ep.HTTP.Allow != nil || ep.HTTP.Timeout != DefaultHTTPTimeout || ep.HTTP.MaxResponseBytes != DefaultMaxResponseBytes {
		t.Errorf("http defaults: %+v", ep.HTTP)
	}
	if ep.Databases != nil || cfg.Databases != nil {
		t.Errorf("databases: %q, %+v", ep.Databases, cfg.Databases)
	}
}

func TestDatabaseErrors(t *testing.T) {
	const ep = "endpoints:\n  - path: /echo\n    script: echo.lua\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"driver typo", "databases:\n  main: {driver: sqlte, dsn: x.db}\n" + ep,
			`c.yaml:2: databases.main.driver: must be "sqlite" or "postgres", got "sqlte" (did you mean "sqlite"?)`},
		{"postgresql", "databases:\n  main: {driver: postgresql, dsn: \"postgres://h/db\"}\n" + ep,
			`c.yaml:2: databases.main.driver: must be "sqlite" or "postgres", got "postgresql" (did you mean "postgres"?)`},
		{"unknown driver", "databases:\n  main:\n    driver: oracle\n    dsn: x\n" + ep,
			`c.yaml:3: databases.main.driver: must be "sqlite" or "postgres", got "oracle"`},
		{"unknown field", "databases:\n  main:\n    driver: sqlite\n    dns: x.db\n" + ep,
			"c.yaml:3: databases.main.dsn: missing: every database needs a dsn, or a dsn_env naming the variable that holds it\n" +
				`c.yaml:4: databases.main: unknown field "dns" (did you mean "dsn"?)`},
		{"no driver", "databases:\n  main: {dsn: x.db}\n" + ep,
			`c.yaml:2: databases.main.driver: missing: every database needs a driver, "sqlite" or "postgres"`},
		{"dsn and dsn_env", "databases:\n  main: {driver: sqlite, dsn: x.db, dsn_env: DB}\n" + ep,
			`c.yaml:2: databases.main: give dsn or dsn_env, not both`},
		{"empty dsn", "databases:\n  main: {driver: sqlite, dsn: \"\"}\n" + ep,
			`c.yaml:2: databases.main.dsn: must not be empty`},
		{"bad dsn_env", "databases:\n  main: {driver: sqlite, dsn_env: \"my var\"}\n" + ep,
			`c.yaml:2: databases.main.dsn_env: must be the name of an environment variable, like MOONGATE_DB_URL, got "my var"`},
		{"postgres dsn of another scheme", "databases:\n  pg: {driver: postgres, dsn: \"mysql://h/db\"}\n" + ep,
			`c.yaml:2: databases.pg.dsn: must be a postgres:// URL or a "key=value ..." string, got a mysql:// URL`},
		{"pool out of range", "databases:\n  main: {driver: sqlite, dsn: x.db, pool: 0}\n" + ep,
			`c.yaml:2: databases.main.pool: must be between 1 and 1000, got 0`},
		{"timeout without unit", "databases:\n  main: {driver: sqlite, dsn: x.db, timeout: 5}\n" + ep,
			`c.yaml:2: databases.main.timeout: must be a duration with a unit, like "5s", got 5`},
		{"not a mapping", "databases: [main]\n" + ep,
			`c.yaml:1: databases: must be a mapping of database names to their settings, got a list`},
		{"settings not a mapping", "databases:\n  main: sqlite\n" + ep,
			`c.yaml:2: databases.main: must be a mapping of fields`},
		{"bad name", "databases:\n  \"my db\": {driver: sqlite, dsn: x.db}\n" + ep,
			`c.yaml:2: databases.my db: a database name is letters, digits, _ and -, starting with a letter or _`},
		{"name given twice", "databases:\n  main: {driver: sqlite, dsn: x.db}\n  main: {driver: sqlite, dsn: y.db}\n" + ep,
			`c.yaml:3: databases.main: given twice`},
		{"endpoint names an unknown database", "databases:\n  main: {driver: sqlite, dsn: x.db}\n" + ep + "    databases: [mian]\n",
			`c.yaml:6: endpoints[0].databases[0]: no database "mian" is declared under the top-level databases: (did you mean "main"?)`},
		{"endpoint names one of others", "databases:\n  main: {driver: sqlite, dsn: x.db}\n  logs: {driver: sqlite, dsn: y.db}\n" + ep + "    databases:\n      - main\n      - archive\n",
			`c.yaml:9: endpoints[0].databases[1]: no database "archive" is declared under the top-level databases: (it declares main, logs)`},
		{"endpoint names a database, none declared", ep + "    databases: [main]\n",
			`c.yaml:4: endpoints[0].databases[0]: no database "main": the config declares no databases (see the top-level databases:)`},
		{"endpoint names a database twice", "databases:\n  main: {driver: sqlite, dsn: x.db}\n" + ep + "    databases: [main, main]\n",
			`c.yaml:6: endpoints[0].databases[1]: "main" is named twice`},
		{"endpoint databases not a list", "databases:\n  main: {driver: sqlite, dsn: x.db}\n" + ep + "    databases: main\n",
			`c.yaml:6: endpoints[0].databases: must be a list of database names, got "main"`},
		{"http unknown field", ep + "    http:\n      alow: [\"https://a.example/\"]\n",
			`c.yaml:5: endpoints[0].http: unknown field "alow" (did you mean "allow"?)`},
		{"http allow not a URL", ep + "    http:\n      allow: [api.example.com]\n",
			`c.yaml:5: endpoints[0].http.allow[0]: must be an http:// or https:// URL prefix with a host, like "https://api.example.com/v1/", got "api.example.com"`},
		{"http allow other scheme", ep + "    http:\n      allow:\n        - https://ok.example/\n        - ftp://files.example/\n",
			`c.yaml:7: endpoints[0].http.allow[1]: must be an http:// or https:// URL prefix with a host, like "https://api.example.com/v1/", got "ftp://files.example/"`},
		{"http allow without host", ep + "    http: {allow: [\"https:///path\"]}\n",
			`c.yaml:4: endpoints[0].http.allow[0]: must be an http:// or https:// URL prefix with a host, like "https://api.example.com/v1/", got "https:///path"`},
		{"http allow with a user", ep + "    http: {allow: [\"https://me:pw@a.example/\"]}\n",
			`c.yaml:4: endpoints[0].http.allow[0]: must not hold a user or password, got "https://me:pw@a.example/"`},
		{"http allow with a query", ep + "    http: {allow: [\"https://a.example/?k=1\"]}\n",
			`c.yaml:4: endpoints[0].http.allow[0]: must not hold a query or fragment (a prefix covers them), got "https://a.example/?k=1"`},
		{"http allow not strings", ep + "    http: {allow: https://a.example/}\n",
			`c.yaml:4: endpoints[0].http.allow: must be a list of strings, got "https://a.example/"`},
		{"http timeout", ep + "    http: {timeout: forever}\n",
			`c.yaml:4: endpoints[0].http.timeout: must be a duration like "30s" or "250ms", got "forever"`},
		{"http max_response_bytes", ep + "    http: {max_response_bytes: 2GiB}\n",
			`c.yaml:4: endpoints[0].http.max_response_bytes: must be a size from 1 bytes to 1GiB, like 65536, "64KiB" or "1MiB", got "2GiB"`},
		{"http not a mapping", ep + "    http: yes\n",
			`c.yaml:4: endpoints[0].http: must be a mapping of fields`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := workdir(t)
			_, err := Parse(filepath.Join(dir, "c.yaml"), []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			got := strings.ReplaceAll(strings.ReplaceAll(err.Error(), filepath.Join(dir, "c.yaml"), "c.yaml"), dir, "DIR")
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestDSN(t *testing.T) {
	dir := workdir(t)
	cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(`databases:
  file: {driver: sqlite, dsn: a.db}
  lite: {driver: sqlite, dsn_env: MOONGATE_TEST_LITE}
  pg: {driver: postgres, dsn_env: MOONGATE_TEST_PG}
endpoints: [{path: /echo, script: echo.lua}]
`))
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) (string, error) {
		d, _ := cfg.Database(name)
		return cfg.DSN(d)
	}
	if got, err := get("file"); err != nil || got != filepath.Join(dir, "a.db") {
		t.Errorf("file: %q, %v", got, err)
	}
	if _, err := get("pg"); err == nil || err.Error() != `database "pg": dsn_env: the environment variable MOONGATE_TEST_PG is not set` {
		t.Errorf("unset: %v", err)
	}
	t.Setenv("MOONGATE_TEST_PG", "")
	if _, err := get("pg"); err == nil || err.Error() != `database "pg": dsn_env: the environment variable MOONGATE_TEST_PG is empty` {
		t.Errorf("empty: %v", err)
	}
	t.Setenv("MOONGATE_TEST_PG", "postgres://127.0.0.1/test")
	if got, err := get("pg"); err != nil || got != "postgres://127.0.0.1/test" {
		t.Errorf("pg: %q, %v", got, err)
	}
	t.Setenv("MOONGATE_TEST_LITE", "data/x.db")
	if got, err := get("lite"); err != nil || got != filepath.Join(dir, "data", "x.db") {
		t.Errorf("lite relative: %q, %v", got, err)
	}
	t.Setenv("MOONGATE_TEST_LITE", ":memory:")
	if got, err := get("lite"); err != nil || got != ":memory:" {
		t.Errorf("lite memory: %q, %v", got, err)
	}
}

func TestEqualAndSameDatabases(t *testing.T) {
	dir := workdir(t)
	parse := func(src string) *Config {
		t.Helper()
		cfg, err := Parse(filepath.Join(dir, "c.yaml"), []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	const ep = "endpoints:\n  - path: /echo\n    script: echo.lua\n"
	base := parse("databases:\n  a: {driver: sqlite, dsn: a.db}\n  b: {driver: sqlite, dsn: b.db}\n" + ep)
	moved := parse("# comment\ndatabases:\n  b: {driver: sqlite, dsn: b.db}\n\n  a: {driver: sqlite, dsn: a.db}\n" + ep)
	changed := parse("databases:\n  a: {driver: sqlite, dsn: a.db, timeout: 1s}\n  b: {driver: sqlite, dsn: b.db}\n" + ep)
	fewer := parse("databases:\n  a: {driver: sqlite, dsn: a.db}\n" + ep)
	if !SameDatabases(base, moved) || !base.Equal(moved) {
		t.Error("moving databases in the file made them differ")
	}
	for name, other := range map[string]*Config{"changed": changed, "fewer": fewer} {
		if SameDatabases(base, other) || base.Equal(other) {
			t.Errorf("%s databases are the same", name)
		}
		if !base.Endpoints[0].Equal(other.Endpoints[0]) {
			t.Errorf("%s databases changed an endpoint", name)
		}
	}
	withDB := parse("databases:\n  a: {driver: sqlite, dsn: a.db}\n" + ep + "    databases: [a]\n")
	withHTTP := parse(ep + "    http: {allow: [\"https://a.example/\"]}\n")
	plain := parse(ep)
	if base.Endpoints[0].Equal(withDB.Endpoints[0]) {
		t.Error("an endpoint given a database is equal to one without")
	}
	if plain.Endpoints[0].Equal(withHTTP.Endpoints[0]) {
		t.Error("an endpoint given http.allow is equal to one without")
	}
	if !SameDatabases(plain, parse(ep)) {
		t.Error("no databases differ from no databases")
	}
}
