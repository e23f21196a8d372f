package test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// slowScript answers each message after 100 ms of work.
const slowScript = `
return { message = function(c, d)
  local began = clock.mono()
  while clock.mono() - began < 0.1 do end
  c:send("re:" .. d)
end }
`

// sendTen sends m1..m10 at once, then waits for the reply to m1.
func sendTen(t *testing.T, c *websocket.Conn) {
	t.Helper()
	for i := 1; i <= 10; i++ {
		send(t, c, fmt.Sprint("m", i))
	}
	if got := recvText(t, c); got != "re:m1" {
		t.Fatalf("first reply %q, want re:m1", got)
	}
}

// expectRepliesThen1001 reads the replies to m2..m10, in order, then
// expects close 1001.
func expectRepliesThen1001(t *testing.T, c *websocket.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i := 2; i <= 10; i++ {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("reply to m%d lost: %v", i, err)
		}
		if want := fmt.Sprint("re:m", i); string(data) != want {
			t.Fatalf("got %q, want %q", data, want)
		}
	}
	_, data, err := c.Read(ctx)
	var ce websocket.CloseError
	switch {
	case err == nil:
		t.Fatalf("got %q after the last reply, want close 1001", data)
	case !errors.As(err, &ce):
		t.Fatalf("after the replies: %v, want close 1001", err)
	case ce.Code != websocket.StatusGoingAway:
		t.Fatalf("closed with %d %q, want 1001", ce.Code, ce.Reason)
	}
}

func TestShutdownAnswersTheMessagesAlreadyRead(t *testing.T) {
	g := startGateway(t, map[string]string{
		"slow.lua":    slowScript,
		"config.yaml": "endpoints:\n  - path: /slow\n    script: slow.lua\n    budget: 1s\n",
	})
	c := dial(t, g.url("/slow"))
	sendTen(t, c)
	code := make(chan int, 1)
	go func() { code <- g.stop() }()
	expectRepliesThen1001(t, c)
	if exit := <-code; exit != 0 {
		t.Errorf("exit code %d after a clean shutdown, want 0\n%s", exit, g.logs)
	}
}

func TestRemovingAnEndpointAnswersTheMessagesAlreadyRead(t *testing.T) {
	dir := t.TempDir()
	other := "  - path: /word\n    script: word.lua\n    options: {word: one}\n"
	writeFiles(t, dir, map[string]string{
		"slow.lua":    slowScript,
		"word.lua":    wordScript,
		"config.yaml": "endpoints:\n  - path: /slow\n    script: slow.lua\n    budget: 1s\n" + other,
	})
	g := startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	c := dial(t, g.url("/slow"))
	sendTen(t, c)
	writeFiles(t, dir, map[string]string{"config.yaml": "endpoints:\n" + other})
	expectRepliesThen1001(t, c)
	g.waitLog(`"config reloaded"`, `"removed":["/slow"]`)
}
