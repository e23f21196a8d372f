package test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// stillWorks shows that a connection that got an error is still served.
func stillWorks(t *testing.T, c *chatter) {
	t.Helper()
	c.send(map[string]any{"type": "rooms"})
	c.expect("rooms")
}

func TestChatErrorCodesKeepTheConnection(t *testing.T) {
	g := startGateway(t, chatFiles(t, 2, "    options: {rate_limit: 3, rate_window: 60}\n"))
	c := newChatter(t, g.url("/chat"))
	c.sendRaw(`{"type":"join","room":"lobby"}`)
	c.expectError("hello_first", "join")
	c.sendRaw(`{"type":"hello","nick":"no spaces"}`)
	c.expectError("invalid_nick", "hello")
	c.sendRaw(`{"type":"hello","nick":"` + strings.Repeat("n", 25) + `"}`)
	c.expectError("invalid_nick", "hello")
	c.sendRaw(`{"type":"hello"}`)
	c.expectError("bad_request", "hello")
	c.sendRaw(`{"type":"hello","nick":"carol"}`)
	c.expect("welcome")
	c.nick = "carol"

	other := newChatter(t, g.url("/chat"))
	other.sendRaw(`{"type":"hello","nick":"CAROL"}`)
	other.expectError("nick_taken", "hello")

	tests := []struct{ send, code, ref string }{
		{`not json`, "bad_request", ""},
		{`[1,2]`, "bad_request", ""},
		{`{"room":"lobby"}`, "bad_request", ""},
		{`{"type":"dance"}`, "unknown_type", "dance"},
		{`{"type":"join"}`, "bad_request", "join"},
		{`{"type":"join","room":"Not Valid"}`, "invalid_room", "join"},
		{`{"type":"join","room":"` + strings.Repeat("r", 33) + `"}`, "invalid_room", "join"},
		{`{"type":"say","room":"lobby","text":"hi"}`, "not_joined", "say"},
		{`{"type":"leave","room":"lobby"}`, "not_joined", "leave"},
		{`{"type":"pm","to":"nobody","text":"hi"}`, "no_such_user", "pm"},
		{`{"type":"pm","text":"hi"}`, "bad_request", "pm"},
		{`{"type":"online"}`, "bad_request", "online"},
		{`{"type":"online","nicks":{"bob":1}}`, "bad_request", "online"},
		{`{"type":"online","nicks":["bob","no spaces"]}`, "invalid_nick", "online"},
		{`{"type":"online","nicks":["n` + strings.Repeat(`","n`, 50) + `"]}`, "bad_request", "online"},
	}
	for _, tt := range tests {
		c.sendRaw(tt.send)
		c.expectError(tt.code, tt.ref)
		stillWorks(t, c)
	}
	c.join("lobby")
	c.sendRaw(`{"type":"say","room":"lobby","text":"` + strings.Repeat("é", 2001) + `"}`)
	c.expectError("too_long", "say")
	c.sendRaw(`{"type":"say","room":"lobby"}`)
	c.expectError("bad_request", "say")
	for i := range 3 {
		c.send(map[string]any{"type": "say", "room": "lobby", "text": fmt.Sprint("ok ", i)})
		c.expect("message")
	}
	c.send(map[string]any{"type": "say", "room": "lobby", "text": "one too many"})
	c.expectError("rate_limited", "say")
	stillWorks(t, c)
}

func TestChatBinaryFrameIsABadRequest(t *testing.T) {
	g := startGateway(t, chatFiles(t, 1, ""))
	c := newChatter(t, g.url("/chat"))
	ctx, cancel := contextWithTimeout(5 * time.Second)
	defer cancel()
	c.conn.Write(ctx, websocket.MessageBinary, []byte{1, 2})
	c.expectError("bad_request", "")
	c.sendRaw(`{"type":"hello","nick":"dan"}`)
	c.expect("welcome")
}

// signInGateway serves chat with sign-in (required or not) and a secret.
func signInGateway(t *testing.T, required bool) *gatewayProc {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, chatFiles(t, 2, fmt.Sprintf("    auth: {secret_env: TEST_CHAT_SECRET, required: %v}\n", required)))
	return startGatewayEnv(t, dir, []string{"TEST_CHAT_SECRET=test-secret"},
		"run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
}

// token runs `moongate token` with secret.
func token(t *testing.T, secret string, args ...string) string {
	t.Helper()
	cmd := exec.Command(moongateBin, append([]string{"token"}, args...)...)
	cmd.Env = append(os.Environ(), "MOONGATE_JWT_SECRET="+secret)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("moongate token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func TestChatSignIn(t *testing.T) {
	g := signInGateway(t, true)
	good := token(t, "test-secret", "-sub", "u-42", "-name", "Alice", "-ttl", "1h")
	expired := token(t, "test-secret", "-sub", "u-42", "-name", "Alice", "-ttl", "-1h")
	forged := token(t, "another-secret", "-sub", "u-42", "-name", "Alice", "-ttl", "1h")

	for _, tt := range []struct{ name, query, reason string }{
		{"missing token", "", "sign-in required: give a token as ?token= or Authorization: Bearer"},
		{"expired token", "?token=" + expired, "token expired"},
		{"wrong signature", "?token=" + forged, "token signature invalid"},
	} {
		status, body := dialStatus(t, g.url("/chat"+tt.query), nil)
		if status != 401 || body != tt.reason {
			t.Errorf("%s: %d %q, want 401 %q", tt.name, status, body, tt.reason)
		}
	}

	// A valid token: the nick defaults to the token's name and cannot be another.
	c := newChatter(t, g.url("/chat?token="+good))
	c.send(map[string]any{"type": "hello", "nick": "mallory"})
	c.expectError("invalid_nick", "hello")
	c.send(map[string]any{"type": "hello"})
	if w := c.expect("welcome"); w.str("nick") != "Alice" {
		t.Errorf("welcome %v, want the token's name", w)
	}
	// The same token works as an Authorization: Bearer header.
	h := map[string][]string{"Authorization": {"Bearer " + good}}
	conn := dialWith(t, g.url("/chat"), h)
	conn.CloseNow()
}

func TestChatGuestsWhereAllowed(t *testing.T) {
	g := signInGateway(t, false)
	guest := login(t, g.url("/chat"), "guest1")
	stillWorks(t, guest)
	good := token(t, "test-secret", "-sub", "u-7", "-name", "Bea Smith", "-ttl", "1h")
	c := newChatter(t, g.url("/chat?token="+good))
	c.send(map[string]any{"type": "hello"})
	if w := c.expect("welcome"); w.str("nick") != "Bea_Smith" {
		t.Errorf("welcome %v", w)
	}
	status, body := dialStatus(t, g.url("/chat?token=garbage"), nil)
	if status != 401 || body != "token malformed" {
		t.Errorf("a bad token where guests are allowed: %d %q", status, body)
	}
}
