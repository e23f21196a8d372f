package test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const wordScript = `return { message = function(c, d) c:send(tostring(options.word) .. ":" .. d) end }` + "\n"

// configGateway serves word.lua at /word with options.word = one.
func configGateway(t *testing.T) (*gatewayProc, string) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"word.lua":    wordScript,
		"config.yaml": wordConfig("one", ""),
	})
	return startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json"), dir
}

func wordConfig(word, more string) string {
	return "endpoints:\n  - path: /word\n    script: word.lua\n    options: {word: " + word + "}\n" + more
}

func TestConfigReloadChangesAddsAndRemovesEndpoints(t *testing.T) {
	g, dir := configGateway(t)
	c := dial(t, g.url("/word"))
	if got := ask(t, c, "a"); got != "one:a" {
		t.Fatalf("before: %q", got)
	}

	// Changed options reach the connected client.
	writeFiles(t, dir, map[string]string{"config.yaml": wordConfig("two", "")})
	eventually(t, "the new options", func() bool { return ask(t, c, "b") == "two:b" })
	line := g.waitLog(`"config reloaded"`)
	if joinStrs(line["changed"]) != "/word" || line["added"] != nil || line["took"] == nil {
		t.Errorf("reload log line %v", line)
	}

	// An added endpoint serves; the connected client stays.
	writeFiles(t, dir, map[string]string{"config.yaml": wordConfig("two",
		"  - path: /more\n    script: word.lua\n    options: {word: more}\n")})
	eventually(t, "the added endpoint", func() bool {
		status, _ := httpStatus(g, "/more")
		return status == http.StatusUpgradeRequired // a WebSocket endpoint answering a plain GET
	})
	m := dial(t, g.url("/more"))
	if got := ask(t, m, "x"); got != "more:x" {
		t.Errorf("added endpoint: %q", got)
	}
	if got := ask(t, c, "c"); got != "two:c" {
		t.Errorf("unchanged endpoint after an addition: %q", got)
	}

	// A removed endpoint closes its clients with 1001 and stops serving.
	writeFiles(t, dir, map[string]string{"config.yaml": wordConfig("two", "")})
	if code, _ := expectClose(t, m); code != websocket.StatusGoingAway {
		t.Errorf("client of the removed endpoint closed with %d, want 1001", code)
	}
	if status, _ := httpStatus(g, "/more"); status != http.StatusNotFound {
		t.Errorf("removed endpoint answers %d", status)
	}
	if got := ask(t, c, "d"); got != "two:d" {
		t.Errorf("remaining endpoint after a removal: %q", got)
	}
}

func TestConfigReloadAppliesTheMessageLimitToConnectedClients(t *testing.T) {
	g, dir := configGateway(t)
	c := dial(t, g.url("/word"))
	ask(t, c, strings.Repeat("m", 100))
	writeFiles(t, dir, map[string]string{"config.yaml": wordConfig("one", "    max_message_bytes: 50\n")})
	g.waitLog(`"config reloaded"`)
	send(t, c, strings.Repeat("m", 100))
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusMessageTooBig {
				t.Errorf("got %v, want 1009 under the new limit", err)
			}
			return
		}
	}
}

func TestABrokenConfigIsRefusedWhole(t *testing.T) {
	g, dir := configGateway(t)
	c := dial(t, g.url("/word"))
	writeFiles(t, dir, map[string]string{"config.yaml": wordConfig("two", "    on_ful: drop\n")})
	line := g.waitLog(`"config reload failed`)
	if err, _ := line["err"].(string); !strings.HasPrefix(err, "config.yaml:5: endpoints[0]: unknown field \"on_ful\"") {
		t.Errorf("error %q", err)
	}
	if got := ask(t, c, "a"); got != "one:a" {
		t.Errorf("after a broken config: %q", got)
	}

	// A config whose new endpoint has a broken script is refused too: nothing of it applies.
	writeFiles(t, dir, map[string]string{
		"bad.lua":     "return {\n",
		"config.yaml": wordConfig("three", "  - path: /bad\n    script: bad.lua\n"),
	})
	eventually(t, "the second refusal", func() bool { return g.logs.count(`"config reload failed`) == 2 })
	if got := ask(t, c, "b"); got != "one:b" {
		t.Errorf("a refused config changed the options: %q", got)
	}
	if status, _ := httpStatus(g, "/bad"); status != http.StatusNotFound {
		t.Errorf("the endpoint of a refused config answers %d", status)
	}
	if !strings.Contains(g.logs.String(), "bad.lua:2: ") {
		t.Errorf("the script error is not logged with its line:\n%s", g.logs)
	}

	// The listen address waits for a restart.
	writeFiles(t, dir, map[string]string{"config.yaml": "listen: 127.0.0.1:1\n" + wordConfig("four", "")})
	g.waitLog(`"listen changed in the config`)
	eventually(t, "the rest of that config", func() bool { return ask(t, c, "c") == "four:c" })
}

// httpStatus GETs path on the gateway.
func httpStatus(g *gatewayProc, path string) (int, error) {
	resp, err := http.Get("http://" + g.addr + path)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// TestConfigCommentRestartsNothing: a comment added above an endpoint, or
// the endpoints reordered, changes where they stand in the file and
// nothing else: their Lua states are not restarted and their timers keep
// running.
func TestConfigCommentRestartsNothing(t *testing.T) {
	dir := t.TempDir()
	const counting = `
local ticks = 0
timer.every(0.01, function() ticks = ticks + 1 end)
return {
  start = function() store.incr("starts") end,
  message = function(c, d) c:send(store.get("starts") .. " " .. (ticks > 0 and "ticking" or "still")) end,
}
`
	a := "  - path: /a\n    script: a.lua\n    states: 1\n"
	b := "  - path: /b\n    script: a.lua\n    states: 1\n"
	writeFiles(t, dir, map[string]string{"a.lua": counting, "config.yaml": "endpoints:\n" + a + b})
	g := startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	c := dial(t, g.url("/a"))
	eventually(t, "the timer to tick", func() bool { return ask(t, c, "?") == "1 ticking" })

	edits := []string{
		"# a comment\n\nendpoints:\n  # the first endpoint\n" + a + b, // lines move
		"endpoints:\n" + b + a, // endpoints reordered
	}
	for i, cfg := range edits {
		writeFiles(t, dir, map[string]string{"config.yaml": cfg})
		// A real change after it, to know the edit has been read.
		extra := fmt.Sprintf("  - path: /marker%d\n    script: a.lua\n", i)
		writeFiles(t, dir, map[string]string{"config.yaml": cfg + extra})
		eventually(t, "the marker endpoint", func() bool { return g.logs.count(fmt.Sprintf(`"/marker%d"`, i)) > 0 })
		if got := ask(t, c, "?"); got != "1 ticking" {
			t.Errorf("edit %d: /a answers %q: its states were restarted", i, got)
		}
		if n := g.logs.count(`"changed":["/`); n > 0 {
			t.Errorf("edit %d: an endpoint was reported changed:\n%s", i, g.logs)
		}
	}
}

// TestListenGivenOnTheCommandLineIsNotAChange: with -listen, a reload does
// not warn that the file's listen differs; a change of the file's own
// listen is said once.
func TestListenGivenOnTheCommandLineIsNotAChange(t *testing.T) {
	g, dir := configGateway(t) // -listen 127.0.0.1:0; the file names none
	c := dial(t, g.url("/word"))
	for i, word := range []string{"two", "three"} {
		writeFiles(t, dir, map[string]string{"config.yaml": wordConfig(word, "")})
		eventually(t, "options "+word, func() bool { return ask(t, c, "x") == word+":x" })
		if n := g.logs.count("listen changed"); n != 0 {
			t.Fatalf("reload %d: %d warnings that listen changed", i+1, n)
		}
	}
	for _, word := range []string{"four", "five"} {
		writeFiles(t, dir, map[string]string{"config.yaml": "listen: 127.0.0.1:9\n" + wordConfig(word, "")})
		eventually(t, "options "+word, func() bool { return ask(t, c, "x") == word+":x" })
	}
	if n := g.logs.count("listen changed"); n != 1 {
		t.Errorf("%d warnings for one change of the file's listen, want 1", n)
	}
}
