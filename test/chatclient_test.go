package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// chatFiles is a config serving the shipped chat script at /chat with the
// given number of states and extra endpoint lines.
func chatFiles(t testing.TB, states int, extra string) map[string]string {
	t.Helper()
	src, err := os.ReadFile("../scripts/chat/chat.lua")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"chat.lua": string(src),
		"config.yaml": fmt.Sprintf("endpoints:\n  - path: /chat\n    script: chat.lua\n    states: %d\n    send_queue: 4096\n%s",
			states, extra),
	}
}

// event is one JSON object the chat server sent.
type event map[string]any

func (e event) str(k string) string { s, _ := e[k].(string); return s }

// chatter is one chat client; a goroutine collects what the server sends.
type chatter struct {
	t      testing.TB
	nick   string
	conn   *websocket.Conn
	events chan event
}

// newChatter connects to url (no hello yet).
func newChatter(t testing.TB, url string) *chatter {
	t.Helper()
	c := &chatter{t: t, conn: dial(t, url), events: make(chan event, 10000)}
	go func() {
		defer close(c.events)
		for {
			_, data, err := c.conn.Read(context.Background())
			if err != nil {
				return
			}
			var e event
			if json.Unmarshal(data, &e) != nil {
				e = event{"type": "unparsable", "raw": string(data)}
			}
			c.events <- e
		}
	}()
	return c
}

// login connects and says hello as nick.
func login(t testing.TB, url, nick string) *chatter {
	t.Helper()
	c := newChatter(t, url)
	c.send(map[string]any{"type": "hello", "nick": nick})
	if w := c.expect("welcome"); w.str("nick") != nick {
		t.Fatalf("welcome %v", w)
	}
	c.nick = nick
	return c
}

func (c *chatter) send(msg any) {
	c.t.Helper()
	data, _ := json.Marshal(msg)
	c.sendRaw(string(data))
}

func (c *chatter) sendRaw(data string) {
	c.t.Helper()
	// A write waits while the gateway pushes back (its state's inbox is
	// full); on a loaded machine that can last seconds. Past the timeout
	// the client library closes the connection.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(data)); err != nil {
		c.t.Fatalf("%s: write: %v", c.nick, err)
	}
}

// next returns the next event within 30 s.
func (c *chatter) next() event {
	c.t.Helper()
	select {
	case e, ok := <-c.events:
		if !ok {
			c.t.Fatalf("%s: connection closed", c.nick)
		}
		return e
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s: nothing received for 30 s", c.nick)
	}
	return nil
}

// expect returns the next event, which must be of type typ.
func (c *chatter) expect(typ string) event {
	c.t.Helper()
	e := c.next()
	if e.str("type") != typ {
		c.t.Fatalf("%s: got %v, want a %s", c.nick, e, typ)
	}
	return e
}

// expectError returns the next event, which must be an error with code.
func (c *chatter) expectError(code, ref string) event {
	c.t.Helper()
	e := c.expect("error")
	if e.str("code") != code || e.str("ref") != ref || e.str("message") == "" {
		c.t.Fatalf("%s: got %v, want error %s for %q", c.nick, e, code, ref)
	}
	return e
}

// quiet asserts that nothing arrives for a moment.
func (c *chatter) quiet() {
	c.t.Helper()
	select {
	case e := <-c.events:
		c.t.Fatalf("%s: unexpected %v", c.nick, e)
	case <-time.After(200 * time.Millisecond):
	}
}

// join joins room and returns the joined event.
func (c *chatter) join(room string) event {
	c.t.Helper()
	c.send(map[string]any{"type": "join", "room": room})
	return c.expect("joined")
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, len(list))
	for i, s := range list {
		out[i], _ = s.(string)
	}
	return out
}

func joinStrs(v any) string { return strings.Join(strs(v), ",") }
