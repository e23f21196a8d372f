package test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// moongateTest runs `moongate test args...` in dir and returns its output
// with the durations blanked (0.00s) and its exit code.
func moongateTest(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(moongateBin, append([]string{"test"}, args...)...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return blankDurations(out.String()), code
}

var durations = regexp.MustCompile(`\d+\.\d+s`)

func blankDurations(s string) string { return durations.ReplaceAllString(s, "0.00s") }

// tickerFiles are a service that uses every part of the clock a test can
// move, and its config.
var tickerFiles = map[string]string{
	"config.yaml": `
endpoints:
  - path: /ticker
    script: svc/ticker.lua
    states: 2
`,
	"svc/ticker.lua": `
local s = {}
local ticks = 0
function s.message(client, data)
  if data == "after" then
    timer.after(5, function() client:send("after at " .. clock.now()) end)
  elseif data == "every" then
    timer.every(2, function() ticks = ticks + 1; client:send("tick " .. ticks) end)
  elseif data == "at" then
    timer.at(clock.now() + 60, "wake", client.id)
  elseif data == "named every" then
    timer.every(30, "beat", client.id)
  elseif data == "ttl" then
    store.set("k", "v", 3)
  elseif data == "get" then
    client:send(tostring(store.get("k")))
  elseif data == "now" then
    client:send(json.encode({ now = clock.now(), millis = clock.millis(), mono = clock.mono() }))
  end
end
function s.timer(name, id)
  local c = clients.get(id)
  if c then c:send(name) end
end
return s
`,
}

func TestMoongateTestVirtualClock(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, tickerFiles)
	writeFiles(t, dir, map[string]string{"svc/ticker_test.lua": `
local tests = {}
function tests.test_after(t)
  local a = t:connect()
  local start = t:now()
  a:send("after")
  a:expect_nothing(4.999)
  t:advance(0.001)
  a:expect("after at " .. (start + 5))
end
function tests.test_every(t)
  local a = t:connect()
  a:send("every")
  t:advance(7)
  a:expect("tick 1")
  a:expect("tick 2")
  a:expect("tick 3")
  a:expect_nothing()
  t:advance(1)
  a:expect{match = "^tick 4$"}
end
function tests.test_named_timers(t)
  local a = t:connect()
  a:send("at")
  a:send("named every")
  t:advance(59)
  a:expect("beat")
  a:expect_nothing()
  t:advance(1)
  local got = {}
  got[a:receive()] = true
  got[a:receive()] = true
  if not (got.wake and got.beat) then t:fail("wake and beat at 60 s") end
  t:advance(30)
  a:expect("beat")
  a:expect_nothing()
end
function tests.test_store_ttl(t)
  local a = t:connect()
  a:send("ttl")
  t:advance(2.9)
  a:send("get")
  a:expect("v")
  t:advance(0.1)
  a:send("get")
  a:expect("nil")
end
function tests.test_clock(t)
  local a = t:connect()
  a:send("now")
  local first = a:expect{now = t:now(), mono = 0}
  t:advance(1.5)
  a:send("now")
  a:expect{now = first.now + 1.5, millis = first.millis + 1500, mono = 1.5}
end
return tests
`})
	out, code := moongateTest(t, dir, "-config", "config.yaml", "-v")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, name := range []string{"test_after", "test_every", "test_named_timers", "test_store_ttl", "test_clock"} {
		if !strings.Contains(out, "--- PASS: "+name+" (0.00s)\n") {
			t.Errorf("%s did not pass:\n%s", name, out)
		}
	}
	if !strings.HasSuffix(out, "PASS\nok  \tsvc/ticker_test.lua\t0.00s\n") {
		t.Errorf("summary:\n%s", out)
	}
}

// echoTestFiles are the echo service and a test file whose second and
// third tests fail.
var echoTestFiles = map[string]string{
	"config.yaml": `
endpoints:
  - path: /echo
    script: echo.lua
`,
	"echo.lua": `
return {
  connect = function(client, req)
    if req.query.deny then return false, 403, "denied" end
  end,
  message = function(client, data, kind)
    if data == "quit" then return client:close(4000, "bye") end
    client:send(data, kind)
  end,
}
`,
	"echo_test.lua": `
test("echoes", function(t)
  local a = t:connect()
  a:send("hi")
  a:expect("hi")
end)
test("wrong_text", function(t)
  local a = t:connect()
  a:send("hi")
  a:expect("bye")
end)
test("wrong_json", function(t)
  local a = t:connect()
  a:send('{"type":"x","n":[1,2]}')
  a:expect{type = "x", n = {1, 3}}
end)
test("closes", function(t)
  local a = t:connect()
  a:send("quit")
  local code, reason = a:expect_close(4000, "bye")
  print("closed with", code, reason)
end)
test("refusal", function(t)
  local status, reason = t:refused{query = {deny = "1"}}
  if status ~= 403 or reason ~= "denied" then t:fail("refused with", status, reason) end
end)
`,
}

func TestMoongateTestReportsFailures(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, echoTestFiles)
	out, code := moongateTest(t, dir, "-config", "config.yaml")
	want := `--- FAIL: wrong_text (0.00s)
    echo_test.lua:10: expected "bye", got hi
--- FAIL: wrong_json (0.00s)
    echo_test.lua:15: expected {"n":[1,3],"type":"x"}, got {"type":"x","n":[1,2]} (.n[2]: want 3, got 2)
FAIL
FAIL	echo_test.lua	0.00s
`
	if code != 1 || out != want {
		t.Errorf("exit %d, output:\n%s\nwant exit 1 and:\n%s", code, out, want)
	}
}

func TestMoongateTestRunFilter(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, echoTestFiles)
	out, code := moongateTest(t, dir, "-config", "config.yaml", "-run", "^(echoes|closes|refusal)$", "-v", "echo_test.lua")
	want := `=== RUN   echoes
--- PASS: echoes (0.00s)
=== RUN   closes
--- PASS: closes (0.00s)
    echo_test.lua:21: closed with 4000 bye
=== RUN   refusal
--- PASS: refusal (0.00s)
PASS
ok  	echo_test.lua	0.00s
`
	if code != 0 || out != want {
		t.Errorf("exit %d, output:\n%s\nwant exit 0 and:\n%s", code, out, want)
	}
	out, code = moongateTest(t, dir, "-config", "config.yaml", "-run", "nothing")
	if code != 0 || out != "ok  \techo_test.lua\t0.00s [no tests to run]\n" {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

func TestMoongateTestScriptErrorsFail(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"config.yaml": "endpoints:\n  - path: /x\n    script: x.lua\n",
		"x.lua":       "return { message = function(c, data) if data == 'boom' then error('boom!') end c:send(data) end }\n",
		"x_test.lua": `
return {
  test_unexpected = function(t)
    local a = t:connect()
    a:send("boom")
  end,
  test_taken = function(t)
    local a = t:connect()
    a:send("boom")
    local errs = t:script_errors()
    if #errs ~= 1 or not errs[1]:find("boom!", 1, true) then t:fail("errors:", #errs) end
  end,
}
`,
	})
	out, code := moongateTest(t, dir, "-config", "config.yaml")
	if code != 1 || !strings.Contains(out, "--- FAIL: test_unexpected") || strings.Contains(out, "--- FAIL: test_taken") ||
		!strings.Contains(out, "script error in the message handler: x.lua:1: boom!") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
}

// TestShippedLuaTests runs the tests shipped beside the example's scripts.
func TestShippedLuaTests(t *testing.T) {
	dir := exampleCopy(t)
	out, code := moongateTest(t, dir)
	if code != 0 || !strings.Contains(out, "ok  \t"+filepath.Join("scripts", "chat", "chat_test.lua")) {
		t.Errorf("exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
		t.Error("moongate test opened the configured database; it should use a stand-in")
	}
}

func TestMoongateTestTimeout(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"config.yaml": "endpoints:\n  - path: /x\n    script: x.lua\n",
		"x.lua":       "return {}\n",
		"x_test.lua":  "return { test_loop = function(t) while true do end end, test_ok = function(t) end }\n",
	})
	out, code := moongateTest(t, dir, "-config", "config.yaml", "-timeout", "200ms")
	want := "--- FAIL: test_loop (0.00s)\n    the test ran past its timeout of 200ms\nFAIL\nFAIL\tx_test.lua\t0.00s\n"
	if code != 1 || out != want {
		t.Errorf("exit %d, output:\n%s\nwant:\n%s", code, out, want)
	}
}
