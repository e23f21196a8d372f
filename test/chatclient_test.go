package test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
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

// chatter is one chat client; a goroutine collects what the server sends,
// without bound, so that the connection is always read (and pings
// answered) however long a test waits before looking at its events.
type chatter struct {
	t    testing.TB
	nick string
	conn *websocket.Conn

	mu     sync.Mutex
	queue  []event
	closed bool          // the connection has ended; queue holds what came before
	more   chan struct{} // has a value when queue or closed may have changed

	// typing keeps "typing" events; by default take skips them, as they
	// are advisory and a browser page sends them while a test types.
	typing bool
}

// newChatter connects to url (no hello yet).
func newChatter(t testing.TB, url string) *chatter {
	t.Helper()
	c := &chatter{t: t, conn: dial(t, url), more: make(chan struct{}, 1)}
	go func() {
		defer c.push(nil)
		for {
			_, data, err := c.conn.Read(context.Background())
			if err != nil {
				return
			}
			var e event
			if json.Unmarshal(data, &e) != nil {
				e = event{"type": "unparsable", "raw": string(data)}
			}
			c.push(e)
		}
	}()
	return c
}

// push queues e, or with nil notes that the connection has ended.
func (c *chatter) push(e event) {
	c.mu.Lock()
	if e == nil {
		c.closed = true
	} else {
		c.queue = append(c.queue, e)
	}
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// take returns the next event within d; ok is false when none came, closed
// true when the connection has ended and nothing is left.
func (c *chatter) take(d time.Duration) (e event, ok, closed bool) {
	timeout := time.NewTimer(d)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		if len(c.queue) > 0 {
			e = c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			c.mu.Unlock()
			if e.str("type") == "typing" && !c.typing {
				continue
			}
			return e, true, false
		}
		closed = c.closed
		c.mu.Unlock()
		if closed {
			return nil, false, true
		}
		select {
		case <-c.more:
		case <-timeout.C:
			return nil, false, false
		}
	}
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

// sendPushedBack sends msg waiting as long as the gateway pushes back,
// for a load that may outrun the gateway (a race-detector build on a
// loaded machine): a write with a deadline would close the connection
// when it passes.
// It reports whether the write succeeded (it fails the test otherwise).
func (c *chatter) sendPushedBack(msg any) bool {
	c.t.Helper()
	data, _ := json.Marshal(msg)
	if err := c.conn.Write(context.Background(), websocket.MessageText, data); err != nil {
		c.t.Errorf("%s: write: %v", c.nick, err)
		return false
	}
	return true
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
	e, ok, closed := c.take(30 * time.Second)
	switch {
	case closed:
		c.t.Fatalf("%s: connection closed", c.nick)
	case !ok:
		c.t.Fatalf("%s: nothing received for 30 s", c.nick)
	}
	return e
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
	if e, ok, _ := c.take(200 * time.Millisecond); ok {
		c.t.Fatalf("%s: unexpected %v", c.nick, e)
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
