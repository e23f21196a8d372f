package test

import (
	"strings"
	"testing"
)

// TestScriptErrorsShowTheirTracebackAndContent: an error raised in a
// helper called from a timer is logged with a traceback naming the helper
// and its callers; error({...}) shows the table's content.
func TestScriptErrorsShowTheirTracebackAndContent(t *testing.T) {
	g := startGateway(t, map[string]string{
		"e.lua": `local function check(n)
  if n > 1 then error("too many: " .. n) end
end
local function tick() check(2) end
return {
  message = function(c, data)
    if data == "timer" then timer.after(0, tick) end
    if data == "table" then error({code = "bad", n = 7}) end
    c:send("ok")
  end,
}
`,
		"config.yaml": "endpoints:\n  - path: /e\n    script: e.lua\n",
	})
	c := dial(t, g.url("/e"))
	ask(t, c, "timer")
	line := g.waitLog(`"script error"`, `"handler":"timer"`)
	if line["err"] != "e.lua:2: too many: 2" {
		t.Errorf("timer error %q", line["err"])
	}
	trace, _ := line["traceback"].(string)
	for _, frame := range []string{"e.lua:2:", "e.lua:4:"} {
		if !strings.Contains(trace, frame) {
			t.Errorf("traceback has no %s frame:\n%s", frame, trace)
		}
	}
	send(t, c, "table")
	line = g.waitLog(`"script error"`, `"handler":"message"`)
	if err, _ := line["err"].(string); !strings.Contains(err, `"code":"bad"`) || !strings.Contains(err, `"n":7`) {
		t.Errorf("error({...}) logged as %q", err)
	}
}
