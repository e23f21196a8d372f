package scripting

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/gatewaytest"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/scripting/luaval"
	lua "github.com/yuin/gopher-lua"
)

// hostile is a script whose commands try to escape the sandbox or exhaust
// the process.
const hostile = `
local attacks = {}
function attacks.execute() return os.execute("touch /tmp/pwned") end
function attacks.open() return io.open("/etc/passwd") end
function attacks.bytecode() return load("\27LuaQ\0")() end
function attacks.require() return require("/etc/passwd") end
function attacks.dofile() return dofile("/etc/passwd") end
function attacks.rep() return string.rep("x", 1e10) end
function attacks.grow() local t = {} local i = 0 while true do i = i + 1 t[i] = string.rep("x", 65536) .. i end end
function attacks.recurse() local function f(n) return f(n + 1) + 1 end return f(1) end
function attacks.loop() while true do end end
function attacks.getmeta() return getmetatable("").__index.rep("x", 1e10) end
return {
  message = function(c, data)
    if data == "ping" then c:send("pong") return end
    attacks[data]()
    c:send("escaped: " .. data)
  end,
}
`

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestSandboxStopsEveryAttack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hostile.lua")
	writeScript(t, path, hostile)
	ep := config.DefaultEndpoint("/ws", path)
	// The budget is generous: under -race the interpreter is slow enough that
	// 64 MiB of growth can take more than half a second, and the memory guard
	// must trip before the time budget does.
	ep.States, ep.Budget, ep.HandlerMemory = 1, 3*time.Second, 64<<20
	logs := &syncBuffer{}
	m := metrics.New()
	svc, err := New(ep, slog.New(slog.NewTextHandler(logs, nil)), m.Endpoint(ep.Path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	srv := gatewaytest.Start(t, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{"/ws": svc}, m)
	attacker := dialScript(t, srv.Addr, nil)
	bystander := dialScript(t, srv.Addr, nil) // the same (single) state

	for attack, want := range map[string]string{
		"execute":  "attempt to index a non-table object(nil) with key 'execute'",
		"open":     "attempt to index a non-table object(nil) with key 'open'",
		"bytecode": "attempt to call a non-function object",
		"require":  "a module is named by words and dots under the service's folder",
		"dofile":   "attempt to call a non-function object",
		"rep":      "string.rep: result would exceed",
		"getmeta":  "string.rep: result would exceed",
		"recurse":  "stack overflow",
		"loop":     "handler stopped: it ran past its budget of 3s",
		"grow":     "handler stopped: it grew the heap by more than 64 MiB",
	} {
		before := strings.Count(logs.String(), "script error")
		// A budget is CPU time: on a loaded machine, under -race, 3 s of it
		// can take many times that of wall time.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		attacker.Write(ctx, websocket.MessageText, []byte(attack))
		for strings.Count(logs.String(), "script error") == before && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if strings.Count(logs.String(), "script error") == before {
			t.Fatalf("%s: no script error logged in 2 minutes", attack)
		}
		lines := strings.Split(logs.String(), "\n")
		last := lines[len(lines)-2]
		if !strings.Contains(last, want) || !strings.Contains(last, "hostile.lua:") {
			t.Errorf("%s: log line %q, want %q at a script line", attack, last, want)
		}
		for _, c := range []*websocket.Conn{attacker, bystander} {
			if got := ping(t, c); got != "pong" {
				t.Fatalf("after %s: %q", attack, got)
			}
		}
	}
	if strings.Contains(logs.String(), "escaped") {
		t.Error("an attack got through")
	}
}

func ping(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, []byte("ping"))
	_, got, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(got)
}

// sandboxed returns a sandboxed state with the json module, the way a
// service's state has it.
func sandboxed(t *testing.T) *lua.LState {
	t.Helper()
	L := newSandboxedState()
	luaval.OpenJSON(L)
	t.Cleanup(L.Close)
	return L
}

// runFor runs script in L under a context that ends once it has used
// budget of CPU time, and returns its error and the CPU time it used.
func runFor(L *lua.LState, budget time.Duration, script string) (error, time.Duration) {
	// As in a service, the budget is CPU time: the goroutine is locked to
	// its thread and a watcher cancels the context once the thread has
	// used budget since the start. took is the CPU time the call used, so
	// that a loaded machine does not make a prompt interruption look slow.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	clock := currentThreadClock()
	begin := clock.now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if clock.now()-begin >= budget {
					cancel()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	L.SetContext(ctx)
	defer L.RemoveContext()
	err := L.DoString(script)
	return err, clock.now() - begin
}

// TestStatesShareNothingAScriptCanMutate: json.null (and any other value the
// runtime provides) cannot carry one state's code into another.
func TestStatesShareNothingAScriptCanMutate(t *testing.T) {
	a, b := sandboxed(t), sandboxed(t)
	err, _ := runFor(a, 5*time.Second, `
		local ok, err = pcall(setmetatable, json.null, {__tostring = function() return "pwned" end,
			__index = function() return "pwned" end})
		assert(not ok, "setmetatable on json.null was allowed")
		assert(err:find("table expected"), err)
		assert(not pcall(setmetatable, "", {}), "setmetatable on a string was allowed")
		assert(not pcall(setmetatable, 1, {}), "setmetatable on a number was allowed")
		assert(getmetatable(json.null) == nil)
		local t = setmetatable({}, {__index = function() return 1 end})
		assert(t.x == 1, "setmetatable on a table must still work")
		assert(json.decode("null") == json.null and json.decode("[null]")[1] == json.null)
	`)
	if err != nil {
		t.Fatal(err)
	}
	err, _ = runFor(b, 5*time.Second, `
		assert(tostring(json.null) ~= "pwned", "state a's __tostring ran in state b")
		assert(getmetatable(json.null) == nil, "state a's metatable is visible in state b")
		assert(json.encode({json.null}) == "[null]")
	`)
	if err != nil {
		t.Fatal(err)
	}
}

// TestBuiltinsAreBounded: every built-in that could run long or allocate
// much stops with an error naming the limit (one a script can catch), or is
// interrupted when the handler's context ends, within budget + 1 s.
func TestBuiltinsAreBounded(t *testing.T) {
	const budget = time.Second
	// What the attacks need is built beforehand, outside the budget.
	const (
		slow = `s = "a" .. (" "):rep(60000) .. "a"`
		big  = `big = ("x"):rep(16 * 1024 * 1024 - 16) t = {} for i = 1, 100 do t[i] = big end`
	)
	for _, tt := range []struct{ name, setup, script, want string }{
		{"match", slow, `return s:match("^%s*(.-)%s*$")`, "pattern matching interrupted"},
		{"find", slow, `return s:find("^%s*(.-)%s*$")`, "pattern matching interrupted"},
		{"gsub", slow, `return s:gsub("%s*(.-)%s*$", "%1")`, "pattern matching interrupted"},
		{"gmatch", slow, `for w in s:gmatch("%s*(.-)%s*$") do end`, "pattern matching interrupted"},
		{"balance", `s = ("("):rep(200000)`, `return s:gsub("%b()", "")`, "pattern matching interrupted"},
		{"sort", `t = {} for i = 1, 3e6 do t[i] = (i * 7919) % 3e6 end`, `table.sort(t)`, "table.sort interrupted"},
		{"unpack", "", `return unpack({}, 1, 1e8)`, "too many results to unpack"},
		{"byte", `s = ("x"):rep(1e6)`, `return string.byte(s, 1, -1)`, "string slice too long"},
		{"gsub size", `s, r = ("x"):rep(2^20), ("y"):rep(4096)`, `return s:gsub("x", r)`, "string.gsub: result would exceed 16777216 bytes"},
		{"format width", `f, s = ("%999999s"):rep(2000), ("x"):rep(2000)`, `return string.format(f, s)`, "invalid format (width or precision too long)"},
		{"format size", big, `return string.format("%s%s", big, big)`, "string.format: result would exceed 16777216 bytes"},
		{"concat", big, `return table.concat(t)`, "table.concat: result would exceed 16777216 bytes"},
		{"concat sep", `t, sep = {}, ("x"):rep(2^20) for i = 1, 1000 do t[i] = "" end`, `return table.concat(t, sep)`, "table.concat: result would exceed"},
		{"rep", "", `return ("x"):rep(2^25)`, "string.rep: result would exceed 16777216 bytes"},
		{"json.encode", `t = {} for i = 1, 26 do t = {a = t, b = t} end`, `return json.encode(t)`, "result would exceed 16777216 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			L := sandboxed(t)
			if err, _ := runFor(L, time.Minute, tt.setup); err != nil {
				t.Fatal(err)
			}
			err, took := runFor(L, budget, tt.script)
			// On a loaded machine a size check may come after the budget;
			// being interrupted then is as good.
			if err == nil || !strings.Contains(err.Error(), tt.want) && !strings.Contains(err.Error(), "interrupted") {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
			if took > budget+time.Second {
				t.Errorf("stopped after %v, budget %v", took, budget)
			}
			if strings.Contains(tt.want, "interrupted") {
				return // after an interruption no instruction runs, not even a pcall's caller
			}
			var caught string
			L.SetGlobal("caught", L.NewFunction(func(L *lua.LState) int { caught = L.CheckString(1); return 0 }))
			if err, _ := runFor(L, time.Minute, `caught(select(2, pcall(function() `+tt.script+` end)))`); err != nil || !strings.Contains(caught, tt.want) {
				t.Errorf("under pcall: caught %q, then %v", caught, err)
			}
		})
	}
}

// TestBoundedBuiltinsFollowLua51: the replacements behave as Lua 5.1's
// string and table libraries do. A want starting with "!" is an error
// that contains the rest.
func TestBoundedBuiltinsFollowLua51(t *testing.T) {
	L := sandboxed(t)
	if err := L.DoString(`function render(...)
		local t = {}
		for i = 1, select("#", ...) do t[i] = tostring((select(i, ...))) end
		return table.concat(t, ",")
	end`); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ expr, want string }{
		{`string.find("hello world", "o w")`, "5,7"},
		{`string.find("hello", "l")`, "3,3"},
		{`string.find("hello", "xyz")`, "nil"},
		{`string.find("a.b", ".", 1, true)`, "2,2"},
		{`string.find("a.b", "%.")`, "2,2"},
		{`string.find("abc", "", 10)`, "4,3"},
		{`string.find("abc", "b", -1)`, "nil"},
		{`string.find("abc", "b", -2)`, "2,2"},
		{`string.find("hello", "(l)(l)")`, "3,4,l,l"},
		{`string.find("hello", "()ll()")`, "3,4,3,5"},
		{`string.match("hello world", "%w+")`, "hello"},
		{`string.match("  trim me  ", "^%s*(.-)%s*$")`, "trim me"},
		{`string.match("key=value", "(%w+)=(%w+)")`, "key,value"},
		{`string.match("f(a(b)c)d", "%b()")`, "(a(b)c)"},
		{`string.match("THE (quick) fox", "%f[%a]%a+", 5)`, "quick"},
		{`string.match("hello", ".-l")`, "hel"},
		{`string.match("hello", ".*l")`, "hell"},
		{`string.match("aaa", "a-b")`, "nil"},
		{`string.match("aaab", "a-b")`, "aaab"},
		{`string.match("x = 10", "^(%a+)%s*=%s*(%d+)$")`, "x,10"},
		{`string.match("[test]", "%[(.*)%]")`, "test"},
		{`string.match("a]b", "[]]")`, "]"},
		{`string.match("a-b", "[a%-]+")`, "a-"},
		{`string.match("b-a", "[a-]+")`, "-a"},
		{`string.match("abc123", "[^%d]+")`, "abc"},
		{`string.match("x7y", "[0-9]")`, "7"},
		{`string.match("2024-01-05", "(%d+)-(%d+)-(%d+)")`, "2024,01,05"},
		{`string.match("hello hello", "(h%a+) %1")`, "hello"},
		{`string.match("abc", "^b")`, "nil"},
		{`string.match("abc", "c$")`, "c"},
		{`string.match("a$c", "$c")`, "$c"},
		{`string.match("abc", "b?c")`, "bc"},
		{`string.match("ac", "ab?c")`, "ac"},
		{`string.match("aBc", "%u")`, "B"},
		{`string.match("ABcd", "%U+")`, "cd"},
		{`#string.match(" \t\n", "%s+")`, "3"},
		{`string.match("a.b,c", "%p")`, "."},
		{`string.match("zzFF0g", "%x+")`, "FF0"},
		{`string.match("abc", "(a)(b)(c)")`, "a,b,c"},
		{`string.match("route /chat/room", "^(%S+) ?(.*)$")`, "route,/chat/room"},
		{`render(string.match("abc", "b", 3))`, "nil"},
		{`(function() local r = {} for k, v in string.gmatch("a=1, b=2", "(%w+)=(%w+)") do r[#r+1] = k .. v end return table.concat(r, ";") end)()`, "a1;b2"},
		{`(function() local r = {} for w in ("one two  three"):gmatch("%a+") do r[#r+1] = w end return table.concat(r, ",") end)()`, "one,two,three"},
		{`(function() local n = 0 for w in ("abc"):gmatch("x*") do n = n + 1 end return n end)()`, "4"},
		{`string.gsub("hello world", "o", "0")`, "hell0 w0rld,2"},
		{`string.gsub("hello world", "(%w+)", "<%1>")`, "<hello> <world>,2"},
		{`string.gsub("hello", "", "-")`, "-h-e-l-l-o-,6"},
		{`string.gsub("abc", "%w", "%0%0")`, "aabbcc,3"},
		{`string.gsub("hello world", "%w+", "%0 %0", 1)`, "hello hello world,1"},
		{`string.gsub("abc", "b", "%%")`, "a%c,1"},
		{`string.gsub("$name is $age", "%$(%w+)", {name = "bob", age = 7})`, "bob is 7,2"},
		{`string.gsub("abc", "%w", function(c) return c:upper() end)`, "ABC,3"},
		{`string.gsub("abc", "%w", function(c) if c == "b" then return false end return "x" end)`, "xbx,3"},
		{`string.gsub("  x  ", "^%s+", "")`, "x  ,1"},
		{`string.gsub("aaa", "^a", "z")`, "zaa,1"},
		{`string.gsub("abc", ".", {a = 1})`, "1bc,3"},
		{`string.gsub("abc", "b", 5)`, "a5c,1"},
		{`string.gsub("héllo wörld", "[^\128-\191]", "")`, "\xa9\xb6,11"},
		{`string.gsub("a b", "(%w)", "%1%1")`, "aa bb,2"},
		{`("x"):rep(3)`, "xxx"},
		{`("x"):rep(0)`, ""},
		{`pcall(string.match, "a", "(")`, "!unfinished capture"},
		{`pcall(string.match, "a", "%")`, "!malformed pattern (ends with '%')"},
		{`pcall(string.match, "a", "[a")`, "!malformed pattern (missing ']')"},
		{`pcall(string.match, "a", ")")`, "!invalid pattern capture"},
		{`pcall(string.gsub, "a", "a", "%2")`, "!invalid capture index"},
		{`pcall(string.match, "a", "%b")`, "!unbalanced pattern"},
		{`pcall(string.match, "a", "%f")`, "!missing '[' after '%f' in pattern"},
		{`pcall(string.gsub, "a", "a", {a = {}})`, "!invalid replacement value (a table)"},
		{`pcall(string.match, ("a"):rep(300), ("a?"):rep(300))`, "!pattern too complex"},
		{`string.format("%5.2f|%d|%s|%x|%5s|%-5s|%%", 3.14159, 42, "hi", 255, "ab", "ab")`, " 3.14|42|hi|ff|   ab|ab   |%"},
		{`string.format("%q", 'a"b\n\r\0')`, "\"a\\\"b\\\n\\r\\000\""},
		{`string.format("%g %g %g %g", 1e20, 0.1, 123456789, 100)`, "1e+20 0.1 1.23457e+08 100"},
		{`string.format("%03d|%+d|% d|%.3d|%-3d|", 7, 5, 5, 7, 1)`, "007|+5| 5|007|1  |"},
		{`string.format("%c%c", 72, 105)`, "Hi"},
		{`string.format("%.2s|%5.1s|", "abc", "abc")`, "ab|    a|"},
		{`string.format("%e|%E", 12345.678, 0.5)`, "1.234568e+04|5.000000E-01"},
		{`string.format("%X|%o|%#x", 3054, 8, 255)`, "BEE|10|0xff"},
		{`string.format("%s %s %s", 1, 2.5, nil)`, "1 2.5 nil"},
		{`string.format("%d|%5.1f", 3.9, 2.25)`, "3|  2.2"},
		{`string.format("%f|%f", 1/0, -1/0)`, "inf|-inf"},
		{`string.format("%.3f", 2/3)`, "0.667"},
		{`pcall(string.format, "%y", 1)`, "!invalid option '%y' to 'format'"},
		{`pcall(string.format, "%d")`, "!number expected"},
		{`pcall(string.format, "%100d", 1)`, "!invalid format (width or precision too long)"},
		{`pcall(string.format, "%-+ #0-d", 1)`, "!invalid format (repeated flags)"},
		{`string.byte("ABC")`, "65"},
		{`string.byte("ABC", 1, -1)`, "65,66,67"},
		{`render(string.byte("ABC", 10))`, ""},
		{`string.byte("ABC", -1)`, "67"},
		{`unpack({1, 2, 3})`, "1,2,3"},
		{`unpack({1, 2, 3}, 2)`, "2,3"},
		{`unpack({1, 2, 3}, 2, 5)`, "2,3,nil,nil"},
		{`select("#", unpack({}, 1, 0))`, "0"},
		{`select("#", unpack({}, 1, 8000))`, "8000"},
		{`table.concat({1, 2, 3}, ", ")`, "1, 2, 3"},
		{`table.concat({"a", "b", "c"}, "", 2, 3)`, "bc"},
		{`table.concat({})`, ""},
		{`pcall(table.concat, {1, {}, 3})`, "!invalid value (at index 2) in table for 'concat'"},
		{`(function() local t = {3, 1, 2} table.sort(t) return table.concat(t, ",") end)()`, "1,2,3"},
		{`(function() local t = {"b", "c", "a"} table.sort(t, function(a, b) return a > b end) return table.concat(t, ",") end)()`, "c,b,a"},
		{`pcall(table.sort, {1, "x", 2})`, "!attempt to compare"},
		{`getmetatable(setmetatable({}, {__metatable = "locked"}))`, "locked"},
		{`pcall(setmetatable, setmetatable({}, {__metatable = "locked"}), {})`, "!cannot change a protected metatable"},
		{`getmetatable("").__index == string`, "true"},
	} {
		err := L.DoString(`result = render(` + tt.expr + `)`)
		got := L.GetGlobal("result").String()
		if err != nil {
			got = "error: " + err.Error()
		}
		if want, isErr := strings.CutPrefix(tt.want, "!"); isErr {
			if !strings.HasPrefix(got, "false,") || !strings.Contains(got, want) {
				t.Errorf("%s: got %q, want an error with %q", tt.expr, got, want)
			}
		} else if got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.expr, got, tt.want)
		}
	}
}
