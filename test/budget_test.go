package test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// spin keeps every core of the machine busy until the test ends, the load
// under which a wall-clock budget used to stop trivial handlers.
func spin(t *testing.T) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 * runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for x := 0; ; x++ {
				if x%1024 == 0 {
					select {
					case <-stop:
						return
					default:
					}
				}
			}
		}()
	}
	t.Cleanup(func() { close(stop); wg.Wait() })
}

// TestBudgetCountsRunningTimeNotWaiting: with every core busy, a 20 ms
// budget never stops a handler that does a millisecond of work: the budget is the
// CPU time the handler used, not the time it waited for a CPU. A handler
// that really runs long is still stopped.
func TestBudgetCountsRunningTimeNotWaiting(t *testing.T) {
	g := startGateway(t, map[string]string{
		"svc.lua": `return {
  message = function(client, data)
    if data == "spin" then while true do end end
    local x = 0
    for i = 1, 3000 do x = x + i end -- a millisecond or so of work
    client:send(data)
  end,
}`,
		"config.yaml": "endpoints:\n  - path: /svc\n    script: svc.lua\n    states: 2\n    budget: 20ms\n",
	})
	spin(t)
	const clients, messages = 10, 150
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- echoMany(g.url("/svc"), i, messages)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := g.logs.count("ran past its budget"); n > 0 {
		t.Errorf("%d trivial handlers were stopped for time they spent waiting for a CPU", n)
	}
	c := dial(t, g.url("/svc"))
	send(t, c, "spin")
	send(t, c, "after")
	if got := recvText(t, c); got != "after" {
		t.Errorf("after a runaway handler: got %q", got)
	}
	eventually(t, "the runaway handler's budget error in the log", func() bool {
		return g.logs.count("ran past its budget of 20ms") == 1
	})
}

// echoMany sends n messages on one connection and checks each comes back.
func echoMany(url string, id, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	for k := range n {
		want := fmt.Sprintf("c%d m%d", id, k)
		if err := c.Write(ctx, websocket.MessageText, []byte(want)); err != nil {
			return err
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", want, err)
		}
		if string(got) != want {
			return fmt.Errorf("got %q, want %q", got, want)
		}
	}
	return nil
}
