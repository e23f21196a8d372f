package test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// post makes one HTTP request to the gateway and returns its status and body.
func post(t *testing.T, g *gatewayProc, method, path, secret, body string) (int, string) {
	t.Helper()
	ctx, cancel := contextWithTimeout(10 * time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+g.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// brokenScript's http handler fails on /broken/fail and answers otherwise.
const brokenScript = `return {
  http = function(req)
    if req.path == "/broken/fail" then
      local t = nil
      return 200, t.field
    end
    return 200, "fine"
  end,
}`

// TestChatAnnounce: POST /chat/api/announce reaches the room's members and
// the history of a later join (kept in the database); a wrong or missing
// secret, bad JSON, a body over the limit and a handler that fails are
// refused, and the gateway goes on serving.
func TestChatAnnounce(t *testing.T) {
	files := chatFiles(t, 2, "    databases: [main]\n    max_message_bytes: 4KiB\n"+
		"  - path: /broken\n    script: broken.lua\n")
	files["config.yaml"] = "databases:\n  main: {driver: sqlite, dsn: data/chat.db}\n" + files["config.yaml"]
	files["broken.lua"] = brokenScript
	dir := t.TempDir()
	writeFiles(t, dir, files)
	g := startGatewayEnv(t, dir, []string{"MOONGATE_ANNOUNCE_SECRET=s3cret"},
		"run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")

	ada := login(t, g.url("/chat"), "ada")
	ada.join("lobby")
	status, body := post(t, g, "POST", "/chat/api/announce", "s3cret", `{"room": "lobby", "text": "maintenance at noon"}`)
	var reply struct{ ID string }
	if status != 200 || json.Unmarshal([]byte(body), &reply) != nil || reply.ID == "" {
		t.Fatalf("announce: %d %s, want 200 with an id", status, body)
	}
	e := ada.next()
	if e.str("type") != "announce" || e.str("room") != "lobby" || e.str("text") != "maintenance at noon" || e.str("id") != reply.ID {
		t.Fatalf("ada got %v, want the announce %s", e, reply.ID)
	}
	if got := historyOf(t, g, "bob"); len(got) != 1 || got[0] != reply.ID+":maintenance at noon" {
		t.Fatalf("a later join's history: %v", got)
	}

	for _, c := range []struct {
		name, method, secret, body string
		status                     int
		code                       string
	}{
		{"no secret", "POST", "", `{"room": "lobby", "text": "x"}`, 401, "unauthorized"},
		{"wrong secret", "POST", "s3cre", `{"room": "lobby", "text": "x"}`, 401, "unauthorized"},
		{"longer secret", "POST", "s3cret!", `{"room": "lobby", "text": "x"}`, 401, "unauthorized"},
		{"bad JSON", "POST", "s3cret", `{"room": `, 400, "bad_request"},
		{"no text", "POST", "s3cret", `{"room": "lobby"}`, 400, "bad_request"},
		{"bad room", "POST", "s3cret", `{"room": "Lobby!", "text": "x"}`, 400, "invalid_room"},
		{"GET", "GET", "s3cret", ``, 405, "method_not_allowed"},
		{"too large", "POST", "s3cret", `{"room": "lobby", "text": "` + strings.Repeat("x", 5000) + `"}`, 413, ""},
	} {
		status, body := post(t, g, c.method, "/chat/api/announce", c.secret, c.body)
		var got struct{ Error, Message string }
		json.Unmarshal([]byte(body), &got)
		if status != c.status || got.Error != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, status, body, c.status, c.code)
		}
	}
	if status, _ := post(t, g, "POST", "/chat/api/nothing", "s3cret", `{}`); status != 404 {
		t.Errorf("an unknown API path: %d, want 404", status)
	}

	if status, body := post(t, g, "GET", "/broken/fail", "", ""); status != 500 || body != "internal error\n" {
		t.Errorf("a failing handler: %d %q, want 500 internal error", status, body)
	}
	g.waitLog(`"script error"`, `"handler":"http"`, "broken.lua:5", "traceback")
	if status, body := post(t, g, "GET", "/broken/ok", "", ""); status != 200 || body != "fine" {
		t.Errorf("after a failure: %d %q", status, body)
	}
	if status, _ := post(t, g, "POST", "/chat/api/announce", "s3cret", `{"room": "lobby", "text": "still here"}`); status != 200 {
		t.Errorf("the chat after a failure elsewhere: %d", status)
	}
	for { // bob came and went; no refused announce reached the room
		e := ada.next()
		if e.str("type") == "presence" {
			continue
		}
		if e.str("type") != "announce" || e.str("text") != "still here" {
			t.Errorf("ada got %v, want the announce still here", e)
		}
		break
	}
}

// TestChatAnnounceWithoutSecret: with its variable unset the announce API
// is not there (404), and the chat serves as before.
func TestChatAnnounceWithoutSecret(t *testing.T) {
	g := startGateway(t, chatFiles(t, 1, "    options: {announce_secret_env: MOONGATE_TEST_NEVER_SET}\n"))
	for _, secret := range []string{"", "anything"} {
		if status, body := post(t, g, "POST", "/chat/api/announce", secret, `{"room": "lobby", "text": "x"}`); status != 404 ||
			!strings.Contains(body, "not_found") {
			t.Errorf("secret %q: %d %s, want 404", secret, status, body)
		}
	}
	ada := login(t, g.url("/chat"), "ada")
	if e := ada.join("lobby"); e.str("type") != "joined" {
		t.Errorf("join: %v", e)
	}
}

// TestChatInfo: GET /chat/api/info tells a page the endpoint's sign-in and
// text limit, with or without the announce secret; other methods are 405.
func TestChatInfo(t *testing.T) {
	for _, c := range []struct{ extra, want string }{
		{"    options: {max_text: 300}\n", `{"auth":"none","max_text":300}`},
		{"    auth: {secret_env: TEST_CHAT_SECRET, required: false}\n", `{"auth":"optional","max_text":2000}`},
		{"    auth: {secret_env: TEST_CHAT_SECRET, required: true}\n", `{"auth":"required","max_text":2000}`},
	} {
		dir := t.TempDir()
		writeFiles(t, dir, chatFiles(t, 1, c.extra))
		g := startGatewayEnv(t, dir, []string{"TEST_CHAT_SECRET=s"}, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
		status, body := post(t, g, "GET", "/chat/api/info", "", "")
		var got, want map[string]any
		json.Unmarshal([]byte(body), &got)
		json.Unmarshal([]byte(c.want), &want)
		if status != 200 || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: %d %s, want %s", c.extra, status, body, c.want)
		}
		if status, _ := post(t, g, "POST", "/chat/api/info", "", "{}"); status != 405 {
			t.Errorf("POST info: %d, want 405", status)
		}
	}
}
