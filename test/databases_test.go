package test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dbConfig is wordConfig with a top-level databases: section and the
// endpoint granted the databases named.
func dbConfig(word, databases, grant string) string {
	return "databases:\n" + databases + wordConfig(word, "    databases: ["+grant+"]\n")
}

func TestGatewayOpensItsSQLiteDatabase(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"word.lua":    wordScript,
		"config.yaml": dbConfig("one", "  main: {driver: sqlite, dsn: state/db/main.db}\n", "main"),
	})
	g := startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	file := filepath.Join(dir, "state", "db", "main.db")
	if info, err := os.Stat(file); err != nil || !info.Mode().IsRegular() {
		t.Fatalf("the database file was not made at start: %v", err)
	}
	if got := ask(t, dial(t, g.url("/word")), "a"); got != "one:a" {
		t.Errorf("endpoint with a database: %q", got)
	}

	// A database added by a reload opens (its file appears)...
	writeFiles(t, dir, map[string]string{"config.yaml": dbConfig("two",
		"  main: {driver: sqlite, dsn: state/db/main.db}\n  more: {driver: sqlite, dsn: state/more.db}\n", "main, more")})
	g.waitLog(`"config reloaded"`)
	if _, err := os.Stat(filepath.Join(dir, "state", "more.db")); err != nil {
		t.Errorf("the added database's file: %v", err)
	}
	c := dial(t, g.url("/word"))
	if got := ask(t, c, "b"); got != "two:b" {
		t.Errorf("after the reload: %q", got)
	}

	// ...and one that cannot open refuses the whole reload: the options
	// changed with it do not apply.
	writeFiles(t, dir, map[string]string{"in-the-way": ""})
	writeFiles(t, dir, map[string]string{"config.yaml": dbConfig("three",
		"  main: {driver: sqlite, dsn: state/db/main.db}\n  more: {driver: sqlite, dsn: in-the-way/more.db}\n", "main, more")})
	line := g.waitLog(`"config reload failed; the running config stays"`, `db \"more\": open`)
	if !strings.Contains(line["err"].(string), "databases: ") {
		t.Errorf("refusal: %v", line)
	}
	if got := ask(t, c, "c"); got != "two:c" {
		t.Errorf("after a refused reload: %q", got)
	}
}

func TestGatewayRefusesABadDatabaseConfig(t *testing.T) {
	tests := []struct {
		name, config, want string
		env                []string
	}{
		{"driver typo", dbConfig("one", "  main: {driver: sqllite, dsn: x.db}\n", "main"),
			`config.yaml:2: databases.main.driver: must be "sqlite" or "postgres", got "sqllite" (did you mean "sqlite"?)`, nil},
		{"unknown database", dbConfig("one", "  main: {driver: sqlite, dsn: x.db}\n", "mian"),
			`config.yaml:7: endpoints[0].databases[0]: no database "mian" is declared under the top-level databases: (did you mean "main"?)`, nil},
		{"dsn_env unset", dbConfig("one", "  main: {driver: postgres, dsn_env: MOONGATE_TEST_UNSET_DSN}\n", "main"),
			`config.yaml: databases: database "main": dsn_env: the environment variable MOONGATE_TEST_UNSET_DSN is not set`, nil},
		{"malformed dsn from the environment", dbConfig("one", "  main: {driver: postgres, dsn_env: MOONGATE_TEST_DSN}\n", "main"),
			`config.yaml: databases: db "main": open: `, []string{"MOONGATE_TEST_DSN=postgres://%zz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"word.lua": wordScript, "config.yaml": tt.config})
			cmd := exec.Command(moongateBin, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), tt.env...)
			out, _ := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.HasPrefix(strings.TrimSpace(string(out)), tt.want) {
				t.Errorf("exit %d, output:\n%s\nwant exit 1 and output starting:\n%s", code, out, tt.want)
			}
		})
	}
	// check reports the same file:line problems, and opens nothing.
	out, code := runCheck(t, map[string]string{"word.lua": wordScript,
		"config.yaml": dbConfig("one", "  main: {driver: sqllite, dsn: x.db}\n", "main")})
	if want := tests[0].want; code != 1 || out != want {
		t.Errorf("check: exit %d, output:\n%s\nwant exit 1 and:\n%s", code, out, want)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"word.lua": wordScript,
		"config.yaml": dbConfig("one", "  main: {driver: sqlite, dsn: data/x.db}\n", "main")})
	check := exec.Command(moongateBin, "check", "-config", "config.yaml")
	check.Dir = dir
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("check made the database's folder (%v)", err)
	}
}

func TestGatewayStartsWithPostgresDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	g := startGateway(t, map[string]string{
		"word.lua":    wordScript,
		"config.yaml": dbConfig("one", "  pg: {driver: postgres, dsn: \"postgres://"+addr+"/test\", timeout: 2s}\n", "pg"),
	})
	g.waitLog(`"database unreachable`, `"database":"pg"`)
	if got := ask(t, dial(t, g.url("/word")), "a"); got != "one:a" {
		t.Errorf("endpoint with its database down: %q", got)
	}
	if n := g.logs.count(`"database unreachable`); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
}
