package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runCheck runs `moongate check -config config.yaml` in a folder holding files.
func runCheck(t *testing.T, files map[string]string) (string, int) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	cmd := exec.Command(moongateBin, "check", "-config", "config.yaml")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), cmd.ProcessState.ExitCode()
}

func TestCheckReportsFileLineProblems(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"typo and bad value", map[string]string{
			"echo.lua":    "return {}",
			"config.yaml": "endpoints:\n  - path: /echo\n    script: echo.lua\n    on_ful: drop\n    states: lots\n",
		}, "config.yaml:4: endpoints[0]: unknown field \"on_ful\" (did you mean \"on_full\"?)\n" +
			"config.yaml:5: endpoints[0].states: must be a whole number or \"auto\", got \"lots\""},
		{"script syntax error", map[string]string{
			"bad.lua":     "local svc = {}\nfunction svc.message(c, d)\n  c:send(d\nend\nreturn svc\n",
			"config.yaml": "endpoints:\n  - path: /bad\n    script: bad.lua\n",
		}, "bad.lua:4: syntax error near 'end'"},
		{"script that fails at load", map[string]string{
			"boom.lua":    "local x = nil\nreturn x.field\n",
			"config.yaml": "endpoints:\n  - path: /boom\n    script: boom.lua\n",
		}, "boom.lua:2: attempt to index a non-table object(nil) with key 'field'"},
		{"start fails", map[string]string{
			"start.lua":   "return {\n  start = function() error('no table') end,\n  message = function() end,\n}\n",
			"config.yaml": "endpoints:\n  - path: /start\n    script: start.lua\n",
		}, "start.lua:2: no table"},
		{"a handler name with a typo", map[string]string{
			"typo.lua":    "return { mesage = function(c, d) c:send(d) end }\n",
			"config.yaml": "endpoints:\n  - path: /typo\n    script: typo.lua\n",
		}, `typo.lua: "mesage" is not a handler Moongate calls (did you mean "message"?)`},
		{"a statement with a typo in start, on a stand-in database", map[string]string{
			"db.lua":      "return {\n  start = function()\n    db.exec('main', 'CREATE TABLE IF NOT EXISTS t (id INTEGER)')\n    db.exec('main', 'INSERT INTO t VALUS (1)')\n  end,\n}\n",
			"config.yaml": "databases:\n  main: {driver: sqlite, dsn: data/never.db}\nendpoints:\n  - path: /db\n    script: db.lua\n    databases: [main]\n",
		}, `db.lua:4: db "main": exec: SQL logic error: near "VALUS": syntax error (1)`},
		{"script returns no handlers", map[string]string{
			"none.lua":    "return 42\n",
			"config.yaml": "endpoints:\n  - path: /none\n    script: none.lua\n",
		}, "none.lua: the script must return a table of handlers, got number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code := runCheck(t, tt.files)
			if code != 1 || out != tt.want {
				t.Errorf("exit %d, output:\n%s\nwant exit 1 and:\n%s", code, out, tt.want)
			}
		})
	}
}

func TestCheckAcceptsAGoodConfig(t *testing.T) {
	out, code := runCheck(t, map[string]string{
		"echo.lua":    "return { message = function(c, d) c:send(d) end }",
		"config.yaml": "endpoints:\n  - path: /echo\n    script: echo.lua\n",
	})
	if code != 0 || out != "config.yaml: ok (1 endpoints)" {
		t.Errorf("exit %d: %s", code, out)
	}
}

func TestRunRefusesABrokenConfig(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"config.yaml": "endpoints:\n  - path: /x\n    script: missing.lua\n"})
	cmd := exec.Command(moongateBin, "run", "-config", "config.yaml")
	cmd.Dir = dir
	out, _ := cmd.CombinedOutput()
	want := "config.yaml:3: endpoints[0].script: missing.lua: no such file or folder"
	if cmd.ProcessState.ExitCode() != 1 || strings.TrimSpace(string(out)) != want {
		t.Errorf("exit %d, output %q, want exit 1 and %q", cmd.ProcessState.ExitCode(), out, want)
	}
}

func TestCheckOpensNoDatabase(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"db.lua": `return { start = function()
			db.exec("main", "CREATE TABLE IF NOT EXISTS t (id INTEGER)")
			assert(#db.query("main", "SELECT id FROM t") == 0)
		end }`,
		"pg.lua": `return { start = function() error("never run: check does not reach PostgreSQL") end }`,
		"config.yaml": "databases:\n  main: {driver: sqlite, dsn: data/main.db}\n  pg: {driver: postgres, dsn: 'postgres://127.0.0.1:1/none'}\n" +
			"endpoints:\n  - path: /db\n    script: db.lua\n    databases: [main]\n  - path: /pg\n    script: pg.lua\n    databases: [main, pg]\n",
	})
	cmd := exec.Command(moongateBin, "check", "-config", "config.yaml")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	if want := `endpoint /pg: start not run: it uses the PostgreSQL database "pg", which check does not connect to`; !strings.Contains(string(out), want) {
		t.Errorf("check said:\n%s\nwant a line %s", out, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("check made the data folder (err %v): it must open no database", err)
	}
}
