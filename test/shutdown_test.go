package test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// stuckScript answers "stick" with a loop no budget stops in time (the
// endpoints using it get a budget of a minute), and echoes anything else.
const stuckScript = `
return { message = function(c, d)
  if d == "stick" then
    log.info("stuck")
    while true do end
  end
  c:send(d)
end }
`

// slowScript answers each message after 100 ms of work, and logs that it did.
const slowScript = `
return { message = function(c, d)
  local began = clock.mono()
  while clock.mono() - began < 0.1 do end
  log.info("handled", { m = d })
  c:send("re:" .. d)
end }
`

// stuckGateway serves stuckScript at /stuck with the given shutdown
// timeout, a tiny inbox and a budget of a minute, and leaves one client
// stuck in the handler with its state's inbox full behind it (so its
// close, too, waits for room).
func stuckGateway(t *testing.T, shutdownTimeout string) *gatewayProc {
	t.Helper()
	g := startGateway(t, map[string]string{
		"stuck.lua": stuckScript,
		"config.yaml": "shutdown_timeout: " + shutdownTimeout + "\nendpoints:\n" +
			"  - path: /stuck\n    script: stuck.lua\n    states: 1\n    inbox: 2\n    budget: 60s\n",
	})
	c := dial(t, g.url("/stuck"))
	if got := ask(t, c, "hello"); got != "hello" {
		t.Fatalf("echo: %q", got)
	}
	send(t, c, "stick")
	g.waitLog(`"stuck"`)
	for i := range 4 { // two fill the inbox; the reader waits with the third
		send(t, c, fmt.Sprint("after ", i))
	}
	go func() { // read, so the close handshake can be answered
		for {
			if _, _, err := c.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	return g
}

// signalAndWait sends sig and returns how long the process took to exit
// and its exit code; it fails the test after limit.
func signalAndWait(t *testing.T, g *gatewayProc, sig os.Signal, limit time.Duration) (time.Duration, int) {
	t.Helper()
	begin := time.Now()
	if err := g.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(limit):
		t.Fatalf("moongate still running %v after %v:\n%s", limit, sig, g.logs)
	}
	return time.Since(begin), g.cmd.ProcessState.ExitCode()
}

func TestSIGTERMEndsByTheShutdownDeadlineWhateverAHandlerDoes(t *testing.T) {
	g := stuckGateway(t, "1s")
	took, code := signalAndWait(t, g, syscall.SIGTERM, 30*time.Second)
	t.Logf("exit %d, %v after SIGTERM (shutdown_timeout 1s)", code, took)
	if took > 2*time.Second {
		t.Errorf("exit %v after SIGTERM, want within shutdown_timeout (1s) + 1s\n%s", took, g.logs)
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1 (the deadline cut the shutdown short)\n%s", code, g.logs)
	}
	if _, ok := g.logs.find(`"shutdown cut short`); !ok {
		t.Errorf("no log line says what the deadline cut:\n%s", g.logs)
	}
	if _, ok := g.logs.find(`"shutdown overran`); ok {
		t.Errorf("the shutdown overran its deadline; only the backstop ended it:\n%s", g.logs)
	}
}

func TestASecondSignalExitsAtOnce(t *testing.T) {
	g := stuckGateway(t, "1m")
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	g.waitLog(`"shutting down"`)
	took, code := signalAndWait(t, g, syscall.SIGINT, 30*time.Second)
	t.Logf("exit %d, %v after the second signal", code, took)
	if took > time.Second {
		t.Errorf("exit %v after the second signal, want at once\n%s", took, g.logs)
	}
	if code != 1 {
		t.Errorf("exit code %d after a second signal, want 1", code)
	}
	if _, ok := g.logs.find(`"second signal`); !ok {
		t.Errorf("no log line for the second signal:\n%s", g.logs)
	}
}

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

func TestSIGTERMEndsByTheShutdownDeadlineDuringAStuckReload(t *testing.T) {
	dir := t.TempDir()
	config := func(budget string) string {
		return "shutdown_timeout: 1s\nendpoints:\n  - path: /stuck\n    script: stuck.lua\n    states: 1\n    budget: " + budget + "\n"
	}
	writeFiles(t, dir, map[string]string{"stuck.lua": stuckScript, "config.yaml": config("60s")})
	g := startGatewayIn(t, dir, "run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json")
	c := dial(t, g.url("/stuck"))
	send(t, c, "stick")
	g.waitLog(`"stuck"`)
	// The new budget makes a new generation; the reload then waits for the
	// stuck state, holding the config (the status endpoint stops answering).
	writeFiles(t, dir, map[string]string{"config.yaml": config("59s")})
	probe := &http.Client{Timeout: 300 * time.Millisecond}
	eventually(t, "the reload to be stuck", func() bool {
		resp, err := probe.Get("http://" + g.addr + "/admin/status")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
	took, code := signalAndWait(t, g, syscall.SIGTERM, 30*time.Second)
	t.Logf("exit %d, %v after SIGTERM (shutdown_timeout 1s)", code, took)
	if took > 2*time.Second {
		t.Errorf("exit %v after SIGTERM, want within shutdown_timeout (1s) + 1s\n%s", took, g.logs)
	}
	if code != 1 {
		t.Errorf("exit code %d, want 1 (the deadline cut the shutdown short)\n%s", code, g.logs)
	}
	if _, ok := g.logs.find(`"shutdown overran`); ok {
		t.Errorf("the shutdown overran its deadline; only the backstop ended it:\n%s", g.logs)
	}
}

// TestShutdownUnderBackpressureLosesNoReply: with an inbox of 2 the
// gateway stops reading m5 and later (TCP pushes back) and shuts down with
// a message waiting for room; every message a handler ran for is answered,
// in order, before 1001.
func TestShutdownUnderBackpressureLosesNoReply(t *testing.T) {
	g := startGateway(t, map[string]string{
		"slow.lua":    slowScript,
		"config.yaml": "endpoints:\n  - path: /slow\n    script: slow.lua\n    states: 1\n    inbox: 2\n    budget: 1s\n",
	})
	c := dial(t, g.url("/slow"))
	sendTen(t, c)
	code := make(chan int, 1)
	go func() { code <- g.stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got := 1
	for ; ; got++ {
		_, data, err := c.Read(ctx)
		if err != nil {
			if status := websocket.CloseStatus(err); status != websocket.StatusGoingAway {
				t.Fatalf("after %d replies: %v, want close 1001", got, err)
			}
			break
		}
		if want := fmt.Sprint("re:m", got+1); string(data) != want {
			t.Fatalf("got %q, want %q", data, want)
		}
	}
	<-code
	if handled := g.logs.count(`"handled"`); handled != got {
		t.Errorf("handlers ran for %d messages, the client got %d replies\n%s", handled, got, g.logs)
	}
	if got < 5 {
		t.Errorf("%d replies: the message waiting for room when the shutdown came (m5) was not answered", got)
	}
	t.Logf("%d replies, then 1001", got)
}
