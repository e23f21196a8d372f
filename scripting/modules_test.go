package scripting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/gatewaytest"
	"github.com/moongate/moongate/gateway/metrics"
)

// serveFiles is serveService with more files (path under the folder ->
// content) written beside the script, example.lua.
func serveFiles(t *testing.T, files map[string]string, script string, log *slog.Logger, tune func(*config.Endpoint), opts ...Option) (string, *Service) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	path := filepath.Join(dir, "example.lua")
	writeScript(t, path, script)
	ep := config.DefaultEndpoint("/ws", path)
	tune(&ep)
	m := metrics.New()
	svc, err := New(ep, log, m.Endpoint(ep.Path), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close) // after the server's shutdown, registered next
	return gatewaytest.Start(t, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{"/ws": svc}, m).Addr, svc
}

// docFile matches a lua block that gives a file of a docs example.
var docFile = regexp.MustCompile("(?s)```lua file=(\\S+)\n(.*?)```")

// docFiles returns the files (name -> content) the lua file=NAME blocks
// in part of the docs give.
func docFiles(part string) map[string]string {
	files := map[string]string{}
	for _, m := range docFile.FindAllStringSubmatch(part, -1) {
		files[m[1]] = m[2]
	}
	return files
}

// writeFiles writes files (slash-separated path under dir -> content),
// making their folders.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeScript(t, p, content)
	}
}

// ask sends msg on c and returns the reply.
func ask(t *testing.T, c *websocket.Conn, msg string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("%q: %v", msg, err)
	}
	return string(data)
}

// exprServer answers each message, a module name and optionally a field,
// by requiring the module and sending the field (or the module), or the
// error require raised.
const exprServer = `
return {
  message = function(c, data)
    local name, field = data:match("^(%S+) ?(%S*)$")
    local ok, m = pcall(require, name)
    if not ok then c:send("error: " .. tostring(m)) return end
    if field ~= "" then c:send(tostring(m[field])) else c:send(tostring(m)) end
  end,
}
`

func TestRequireLoadsModulesFromTheServiceFolder(t *testing.T) {
	files := map[string]string{
		"util.lua":          "local M = {}\nstore.incr('runs:util')\nfunction M.greet(n) return 'hello ' .. n end\nM.name = ...\nreturn M\n",
		"lib/strings.lua":   "return { upper = string.upper, deep = require('lib.deep.more').x }\n",
		"lib/deep/more.lua": "return { x = 'deep' }\n",
		"pkg/init.lua":      "return { kind = 'init' }\n",
		"pkg.lua.txt":       "not a module\n",
		"nothing.lua":       "store.incr('runs:nothing')\n",
		"shared.lua":        "return { n = 0 }\n",
	}
	addr, svc := serveFiles(t, files, exprServer, slog.New(slog.DiscardHandler), func(ep *config.Endpoint) { ep.States = 2 })
	a, b := dialScript(t, addr, nil), dialScript(t, addr, nil) // one per state
	for _, c := range []struct{ ask, want string }{
		{"util name", "util"},
		{"lib.strings deep", "deep"},
		{"lib.deep.more x", "deep"},
		{"pkg kind", "init"},
		{"nothing", "true"},
	} {
		for _, conn := range []*websocket.Conn{a, b} {
			if got := ask(t, conn, c.ask); got != c.want {
				t.Errorf("%q: got %q, want %q", c.ask, got, c.want)
			}
		}
	}
	// A module's top level runs once per state, however often it is
	// required: two states, two runs.
	for range 3 {
		ask(t, a, "util")
		ask(t, b, "util")
	}
	if n, _ := svc.store.Get("runs:util"); fmt.Sprint(n) != "2" {
		t.Errorf("util's top level ran %v times in 2 states, want 2", n)
	}
	// The value is cached: a table changed by one handler is the same
	// table in the next (package.loaded).
	ask(t, a, "shared n")
	if got := ask(t, a, "shared"); !strings.HasPrefix(got, "table:") {
		t.Fatalf("shared: %q", got)
	}
	want := []string{"lib/deep/more.lua", "lib/strings.lua", "nothing.lua", "pkg/init.lua", "shared.lua", "util.lua"}
	dir := filepath.Dir(svc.Endpoint().Script)
	got := svc.Modules()
	if len(got) != len(want) {
		t.Fatalf("Modules() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != filepath.Join(dir, want[i]) {
			t.Errorf("Modules()[%d] = %q, want %q", i, got[i], want[i])
		}
	}
}

func TestRequireStaysInsideTheServiceFolder(t *testing.T) {
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.lua": "return { x = 'secret' }\n"})
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"lib/ok.lua": "return { x = 'ok' }\n"})
	if err := os.Symlink(filepath.Join(outside, "secret.lua"), filepath.Join(dir, "evil.lua")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../"+filepath.Base(outside)+"/secret.lua", filepath.Join(dir, "lib", "rel.lua")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "example.lua")
	writeScript(t, path, exprServer)
	ep := config.DefaultEndpoint("/ws", path)
	m := metrics.New()
	svc, err := New(ep, slog.New(slog.DiscardHandler), m.Endpoint(ep.Path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	addr := gatewaytest.Start(t, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{"/ws": svc}, m).Addr
	c := dialScript(t, addr, nil)
	const badName = `a module is named by words and dots under the service's folder`
	for _, tc := range []struct{ name, want string }{
		{"lib.ok x", "ok"},
		{"../" + filepath.Base(outside) + "/secret", badName},
		{"..secret", badName},
		{"lib..ok", badName},
		{"/etc/passwd", badName},
		{outside + "/secret", badName},
		{"lib/ok", badName},
		{`lib\ok`, badName},
		{"evil", "outside the folder"},
		{"out.secret", "outside the folder"},
		{"lib.rel", "outside the folder"},
		{"missing", "no missing.lua or missing/init.lua in the service's folder"},
	} {
		got := ask(t, c, tc.name)
		if tc.want == "ok" {
			if got != "ok" {
				t.Errorf("%q: %q", tc.name, got)
			}
			continue
		}
		if !strings.HasPrefix(got, "error: "+path+":5: require ") || !strings.Contains(got, tc.want) || strings.Contains(got, "secret'") {
			t.Errorf("%q: got %q, want an error at example.lua:5 saying %q", tc.name, got, tc.want)
		}
	}
}

func TestModuleErrorsNameTheModuleFileAndLine(t *testing.T) {
	files := map[string]string{
		"lib/boom.lua":   "local M = {}\nlocal x = nil\nM.y = x.field\nreturn M\n",
		"lib/syntax.lua": "local M = {}\nfunction M.f(\nreturn M\n",
		"lib/raise.lua":  "error('refused by the module')\n",
		"cycle/a.lua":    "return { b = require('cycle.b') }\n",
		"cycle/b.lua":    "return { c = require('cycle.c') }\n",
		"cycle/c.lua":    "return { a = require('cycle.a') }\n",
	}
	addr, _ := serveFiles(t, files, exprServer, slog.New(slog.DiscardHandler), func(ep *config.Endpoint) {})
	c := dialScript(t, addr, nil)
	for _, tc := range []struct{ name, want string }{
		{"lib.boom", "/lib/boom.lua:3: attempt to index a non-table object(nil) with key 'field'"},
		{"lib.syntax", "/lib/syntax.lua:3: syntax error near 'return'"},
		{"lib.raise", "/lib/raise.lua:1: refused by the module"},
		{"cycle.a", `/cycle/c.lua:1: require "cycle.a": cyclic require: cycle.a → cycle.b → cycle.c → cycle.a`},
		// A module that failed is not cached: the next require runs it
		// again and fails the same way.
		{"lib.boom", "/lib/boom.lua:3: attempt to index"},
		{"cycle.b", `/cycle/a.lua:1: require "cycle.b": cyclic require: cycle.b → cycle.c → cycle.a → cycle.b`},
	} {
		if got := ask(t, c, tc.name); !strings.HasPrefix(got, "error: ") || !strings.Contains(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.name, got, tc.want)
		}
	}

	// At the top level, the error refuses the script and names the module.
	dir := t.TempDir()
	writeFiles(t, dir, files)
	for mod, want := range map[string]string{
		"lib.boom":   filepath.Join(dir, "lib/boom.lua") + ":3: attempt to index",
		"lib.syntax": filepath.Join(dir, "lib/syntax.lua") + ":3: syntax error near 'return'",
		"cycle.a":    filepath.Join(dir, "cycle/c.lua") + `:1: require "cycle.a": cyclic require`,
		"nope":       filepath.Join(dir, "example.lua") + `:1: require "nope": no such module: no nope.lua or nope/init.lua`,
	} {
		path := filepath.Join(dir, "example.lua")
		writeScript(t, path, "local m = require('"+mod+"')\nreturn {}\n")
		ep := config.DefaultEndpoint("/ws", path)
		_, err := New(ep, slog.New(slog.DiscardHandler), nil)
		var se *ScriptError
		if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("New with require(%q): %v, want %q", mod, err, want)
		}
		if err := Check(ep); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("Check with require(%q): %v, want %q", mod, err, want)
		}
	}
}

// TestModuleTopLevelRunsUnderTheBudget: a module whose top level never
// ends is stopped like a handler, at the top level and in a handler.
func TestModuleTopLevelRunsUnderTheBudget(t *testing.T) {
	files := map[string]string{"spin.lua": "while true do end\n"}
	addr, _ := serveFiles(t, files, exprServer, slog.New(slog.DiscardHandler), func(ep *config.Endpoint) { ep.Budget = 50 * time.Millisecond })
	c := dialScript(t, addr, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, []byte("spin"))
	c.Write(ctx, websocket.MessageText, []byte("missing"))
	// The handler was stopped (no reply to "spin"); the next one runs.
	if _, got, err := c.Read(ctx); err != nil || !strings.Contains(string(got), `require "missing"`) {
		t.Fatalf("after a module past its budget: %q %v", got, err)
	}

	dir := t.TempDir()
	writeFiles(t, dir, files)
	path := filepath.Join(dir, "example.lua")
	writeScript(t, path, "require('spin')\nreturn {}\n")
	ep := config.DefaultEndpoint("/ws", path)
	ep.Budget = 50 * time.Millisecond
	if _, err := New(ep, slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), "ran past its budget") {
		t.Errorf("a module spinning at the top level: %v", err)
	}
}

const tagUser = `
local tag = require("lib.tag")
return {
  message = function(c, data)
    if data == "lazy" then c:send(require("lazy").tag) return end
    c:send(tag.tag .. ":" .. data)
  end,
}
`

func TestSavingAModuleReloadsTheService(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"lib/tag.lua": "return { tag = 'one' }\n", "lazy.lua": "return { tag = 'lazy1' }\n"})
	path := filepath.Join(dir, "svc.lua")
	writeScript(t, path, tagUser)
	ep := config.DefaultEndpoint("/ws", path)
	ep.States = 2
	m := metrics.New()
	svc, err := New(ep, slog.New(slog.DiscardHandler), m.Endpoint(ep.Path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	var seen atomic.Int32
	svc.NotifyModules(func() { seen.Add(1) })
	srv := gatewaytest.Start(t, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{"/ws": svc}, m)
	c := dialScript(t, srv.Addr, nil)
	write := func(name, src string) { writeFiles(t, dir, map[string]string{name: src}) }

	if got := ask(t, c, "a"); got != "one:a" {
		t.Fatalf("got %q", got)
	}
	v1 := svc.Status().Version
	if v1 == versionOf([]byte(tagUser)) {
		t.Error("the version does not cover the module")
	}
	// Saving the module unchanged restarts nothing.
	write("lib/tag.lua", "return { tag = 'one' }\n")
	if changed, err := svc.ReloadModules(nil); changed || err != nil {
		t.Errorf("unchanged module: changed=%v err=%v", changed, err)
	}
	// A changed module is a new version; the client stays connected.
	write("lib/tag.lua", "return { tag = 'two' }\n")
	if changed, err := svc.ReloadModules(nil); !changed || err != nil {
		t.Fatalf("changed module: changed=%v err=%v", changed, err)
	}
	if got := ask(t, c, "b"); got != "two:b" {
		t.Errorf("after the module changed: %q", got)
	}
	if svc.Status().Version == v1 {
		t.Error("a changed module kept the version")
	}
	// A broken module refuses the version; the running one stays and the
	// error names the module's file and line.
	write("lib/tag.lua", "return { tag = \n")
	_, err = svc.ReloadModules(nil)
	wantErr := filepath.Join(dir, "lib/tag.lua") + ":2: "
	if err == nil || !strings.HasPrefix(err.Error(), wantErr) || !strings.HasPrefix(svc.Status().LastError, wantErr) {
		t.Errorf("broken module: err %v, status %+v, want %q", err, svc.Status(), wantErr)
	}
	if got := ask(t, c, "c"); got != "two:c" {
		t.Errorf("after a broken module: %q", got)
	}
	write("lib/tag.lua", "return { tag = 'three' }\n")
	if changed, err := svc.ReloadModules(nil); !changed || err != nil {
		t.Fatalf("fixed module: changed=%v err=%v status %+v", changed, err, svc.Status())
	}
	if got := ask(t, c, "d"); got != "three:d" {
		t.Errorf("after fixing the module: %q", got)
	}

	// A module a handler requires is recorded when it is, and watched.
	before := seen.Load()
	if got := ask(t, c, "lazy"); got != "lazy1" {
		t.Fatalf("lazy: %q", got)
	}
	if seen.Load() == before || len(svc.Modules()) != 2 {
		t.Errorf("a lazily required module: notified %d times, Modules() = %v", seen.Load()-before, svc.Modules())
	}
	// Changing it reloads; breaking it refuses the reload, though no top
	// level requires it; it stays recorded in the new version.
	write("lazy.lua", "return { tag = 'lazy2' }\n")
	if changed, err := svc.ReloadModules(nil); !changed || err != nil {
		t.Fatalf("changed lazy module: changed=%v err=%v", changed, err)
	}
	if got := ask(t, c, "lazy"); got != "lazy2" {
		t.Errorf("lazy after a change: %q", got)
	}
	write("lazy.lua", "return { tag = 'lazy3' \n")
	if _, err := svc.ReloadModules(nil); err == nil || !strings.HasPrefix(err.Error(), filepath.Join(dir, "lazy.lua")+":2:") {
		t.Errorf("broken lazy module: %v", err)
	}
	if got := ask(t, c, "lazy"); got != "lazy2" {
		t.Errorf("lazy after a broken save: %q", got)
	}
	// A module the running version loaded that is deleted is dropped.
	os.Remove(filepath.Join(dir, "lazy.lua"))
	if changed, err := svc.ReloadModules(nil); !changed || err != nil || len(svc.Modules()) != 1 {
		t.Errorf("deleted lazy module: changed=%v err=%v modules %v", changed, err, svc.Modules())
	}
}
