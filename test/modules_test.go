package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// moduleUser answers "tag X" with the shared module's tag and X, and any
// other message by requiring the module it names (and sending its field
// "v"), or the error require raised.
const moduleUser = `
local shared = require("lib.shared")
return {
  message = function(c, data)
    local x = data:match("^tag (.*)$")
    if x then c:send(shared.tag .. ":" .. x) return end
    local ok, m = pcall(require, data)
    c:send(ok and tostring(m.v) or "error: " .. tostring(m))
  end,
}
`

// moduleGateway serves moduleUser at /a (svc/a.lua) and /b (svc/b.lua),
// both requiring svc/lib/shared.lua, with more modules beside them.
func moduleGateway(t *testing.T) (g *gatewayProc, dir string) {
	t.Helper()
	dir = t.TempDir()
	outside := filepath.Join(dir, "outside")
	writeFiles(t, dir, map[string]string{
		"svc/a.lua":             moduleUser,
		"svc/b.lua":             moduleUser,
		"svc/lib/shared.lua":    "return { tag = 'one' }\n",
		"svc/lib/deep/util.lua": "return { v = 'deep' }\n",
		"svc/pkg/init.lua":      "return { v = 'init' }\n",
		"svc/lazy/mod.lua":      "return { v = 'lazy1' }\n",
		"svc/boom.lua":          "local M = {}\nM.v = nil .. 'x'\nreturn M\n",
		"outside/secret.lua":    "return { v = 'secret' }\n",
		"config.yaml": "endpoints:\n" +
			"  - path: /a\n    script: svc/a.lua\n    states: 2\n" +
			"  - path: /b\n    script: svc/b.lua\n",
	})
	if err := os.Symlink(filepath.Join(outside, "secret.lua"), filepath.Join(dir, "svc", "evil.lua")); err != nil {
		t.Fatal(err)
	}
	g = startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	return g, dir
}

// TestModulesLoadFromTheServiceFolderOnly: require finds nested modules
// and init.lua under the service's folder; "..", absolute paths and a
// symlink that leads out are refused with a clear error; a module's error
// names its file and line.
func TestModulesLoadFromTheServiceFolderOnly(t *testing.T) {
	g, _ := moduleGateway(t)
	c := dial(t, g.url("/a"))
	for _, tc := range []struct{ ask, want string }{
		{"tag x", "one:x"},
		{"lib.deep.util", "deep"},
		{"pkg", "init"},
		{"../outside/secret", `error: svc/a.lua:7: require "../outside/secret": a module is named by words and dots under the service's folder`},
		{"..outside.secret", `error: svc/a.lua:7: require "..outside.secret": a module is named by words and dots`},
		{"/etc/passwd", `error: svc/a.lua:7: require "/etc/passwd": a module is named by words and dots`},
		{"evil", `error: svc/a.lua:7: require "evil": svc/evil.lua: outside the folder`},
		{"boom", `error: svc/boom.lua:2: cannot perform concat operation`},
		{"missing", `error: svc/a.lua:7: require "missing": no such module: no missing.lua or missing/init.lua in the service's folder svc`},
	} {
		if got := ask(t, c, tc.ask); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.ask, got, tc.want)
		}
	}
}

// TestSavingAModuleReloadsItsServices: a module saved reloads every
// service that uses it (clients stay connected and see the new version);
// a save that changes nothing restarts nothing; a broken module is
// refused with its file:line while the running version serves on, and
// fixing it recovers; a module a handler requires later is watched too.
func TestSavingAModuleReloadsItsServices(t *testing.T) {
	g, dir := moduleGateway(t)
	a, b := dial(t, g.url("/a")), dial(t, g.url("/b"))

	writeFiles(t, dir, map[string]string{"svc/lib/shared.lua": "return { tag = 'two' }\n"})
	eventually(t, "both services on the new module", func() bool {
		return ask(t, a, "tag a") == "two:a" && ask(t, b, "tag b") == "two:b"
	})
	eventually(t, "two reloads logged", func() bool { return g.logs.count(`"script reloaded"`) == 2 })

	// The same content saved again restarts nothing.
	writeFiles(t, dir, map[string]string{"svc/lib/shared.lua": "return { tag = 'two' }\n"})
	writeFiles(t, dir, map[string]string{"svc/lib/deep/other.lua": "return {}\n"}) // a file no one uses
	time.Sleep(settled)
	if n := g.logs.count(`"script reloaded"`); n != 2 {
		t.Errorf("an unchanged save reloaded: %d reloads", n)
	}

	// A broken module: refused for both, naming its file and line; both
	// keep serving the running version.
	writeFiles(t, dir, map[string]string{"svc/lib/shared.lua": "return { tag = \n"})
	eventually(t, "the refusal of the broken module", func() bool {
		return g.logs.count(`"script reload failed`, "svc/lib/shared.lua:2: ") == 2
	})
	if got := ask(t, a, "tag a"); got != "two:a" {
		t.Errorf("a after a broken module: %q", got)
	}
	if got := ask(t, b, "tag b"); got != "two:b" {
		t.Errorf("b after a broken module: %q", got)
	}
	// Fixed: both recover, the same clients on the new version.
	writeFiles(t, dir, map[string]string{"svc/lib/shared.lua": "return { tag = 'three' }\n"})
	eventually(t, "both services on the fixed module", func() bool {
		return ask(t, a, "tag a") == "three:a" && ask(t, b, "tag b") == "three:b"
	})

	// A module required lazily, in a handler, in a folder nothing else
	// is in, is watched from then on: for the service that required it.
	if got := ask(t, a, "lazy.mod"); got != "lazy1" {
		t.Fatalf("lazy: %q", got)
	}
	before := g.logs.count(`"script reloaded"`)
	writeFiles(t, dir, map[string]string{"svc/lazy/mod.lua": "return { v = 'lazy2' }\n"})
	eventually(t, "the lazily required module reloaded", func() bool { return ask(t, a, "lazy.mod") == "lazy2" })
	time.Sleep(settled)
	if n := g.logs.count(`"script reloaded"`); n != before+1 {
		t.Errorf("saving a module only /a uses: %d reloads, want 1", n-before)
	}
}

// TestCheckReportsModuleErrors: moongate check compiles and runs the
// modules a script's top level requires and names a module's problem by
// its file and line.
func TestCheckReportsModuleErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		module, want string
	}{
		"syntax":  {"local M = {}\nfunction M.f(\nreturn M\n", "lib/util.lua:3: syntax error near 'return'"},
		"runtime": {"local M = {}\nM.x = nil .. 'x'\nreturn M\n", "lib/util.lua:2: cannot perform concat operation"},
	} {
		t.Run(name, func(t *testing.T) {
			out, code := runCheck(t, map[string]string{
				"svc.lua":      "local util = require('lib.util')\nreturn { message = function(c, d) c:send(d) end }\n",
				"lib/util.lua": tc.module,
				"config.yaml":  "endpoints:\n  - path: /svc\n    script: svc.lua\n",
			})
			if code != 1 || !strings.HasPrefix(out, tc.want) {
				t.Errorf("check: exit %d, output %q; want 1 and %q", code, out, tc.want)
			}
		})
	}
	out, code := runCheck(t, map[string]string{
		"svc.lua":      "local util = require('lib.util')\nreturn { message = function(c, d) c:send(util.f(d)) end }\n",
		"lib/util.lua": "return { f = function(d) return d end }\n",
		"config.yaml":  "endpoints:\n  - path: /svc\n    script: svc.lua\n",
	})
	if code != 0 {
		t.Errorf("check of a good module: exit %d, %s", code, out)
	}
}
