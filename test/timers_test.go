package test

import (
	"fmt"
	"testing"
)

// TestTimersDoNotStarveClients: a script that keeps thousands of
// zero-delay timers firing does not lock out new clients (they used to get
// 503 "service busy" for good) nor delay the messages of those connected.
func TestTimersDoNotStarveClients(t *testing.T) {
	g := startGateway(t, map[string]string{
		"svc.lua": `
local function again() timer.after(0, again) end
return {
  message = function(client, data)
    if data == "flood" then
      for _ = 1, 9000 do timer.after(0, again) end
    end
    client:send(data)
  end,
}`,
		"config.yaml": "endpoints:\n  - path: /svc\n    script: svc.lua\n    states: 1\n",
	})
	first := dial(t, g.url("/svc"))
	if got := ask(t, first, "flood"); got != "flood" {
		t.Fatalf("flood: %q", got)
	}
	for i := range 5 {
		c := dial(t, g.url("/svc")) // fails the test on a refusal
		want := fmt.Sprintf("hello %d", i)
		if got := ask(t, c, want); got != want {
			t.Fatalf("client %d: %q", i, got)
		}
		c.CloseNow()
	}
	if got := ask(t, first, "still"); got != "still" {
		t.Errorf("the first client: %q", got)
	}
}
