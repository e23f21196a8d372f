package luatest_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/db"
	"github.com/moongate/moongate/scripting"
	"github.com/moongate/moongate/scripting/luatest"
)

func TestVirtualClockOrder(t *testing.T) {
	start := time.Unix(1000, 0)
	c := luatest.NewVirtualClock(start)
	fired := make(chan string, 10)
	c.AfterFunc(2*time.Second, func() { fired <- "b" })
	c.AfterFunc(time.Second, func() { fired <- "a1" })
	c.AfterFunc(time.Second, func() { fired <- "a2" })
	stopped := c.AfterFunc(time.Second, func() { fired <- "stopped" })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop reports whether the timer was armed")
	}
	moved := c.AfterFunc(time.Second, func() { fired <- "c" })
	moved.Reset(3 * time.Second)
	var got []string
	for c.Step(start.Add(10 * time.Second)) {
		if err := c.WaitCallbacks(context.Background()); err != nil {
			t.Fatal(err)
		}
		got = append(got, <-fired)
	}
	want := []string{"a1", "a2", "b", "c"}
	if len(got) != len(want) {
		t.Fatalf("fired %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("fired %v, want %v", got, want)
		}
	}
	if !c.Now().Equal(start.Add(10 * time.Second)) {
		t.Errorf("now %v, want start+10s", c.Now())
	}
}

// harness starts script as an endpoint's service with the given
// databases under a virtual clock.
func harness(t *testing.T, script string, dbs scripting.Databases, names ...string) *luatest.Harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "svc.lua")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ep := config.Endpoint{Path: "/svc", Script: path, States: 3, Databases: names}
	var opts []scripting.Option
	if dbs != nil {
		opts = append(opts, scripting.WithDatabases(dbs))
	}
	h, err := luatest.NewHarness(ep, luatest.NewVirtualClock(time.Unix(1e9, 0)), slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// next settles h and returns c's next message.
func next(t *testing.T, h *luatest.Harness, c *luatest.Conn) string {
	t.Helper()
	if err := h.Settle(); err != nil {
		t.Fatal(err)
	}
	m, ok := c.Next()
	if !ok {
		t.Fatal("no message")
	}
	return m.Data
}

func TestSettleRunsTimersDueNow(t *testing.T) {
	h := harness(t, `
return { message = function(client, data)
  local n = 0
  local function again()
    n = n + 1
    if n < 5 then timer.after(0, again) else client:send("chain " .. n) end
  end
  timer.after(0, again)
end }`, nil)
	c, err := h.Connect(luatest.ConnectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send("go", false); err != nil {
		t.Fatal(err)
	}
	if got := next(t, h, c); got != "chain 5" {
		t.Errorf("got %q", got)
	}
}

type oneDB map[string]db.DB

func (d oneDB) Get(name string) (db.DB, bool) { v, ok := d[name]; return v, ok }

func TestSettleWaitsForSuspendedHandlers(t *testing.T) {
	mem, err := db.Open(context.Background(), db.Config{Name: "main", Driver: config.DriverSQLite, DSN: ":memory:"})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	h := harness(t, `
return { message = function(client, data)
  local rows = db.query("main", "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) SELECT count(*) AS c FROM n")
  client:send(data .. " " .. rows[1].c)
end }`, oneDB{"main": mem}, "main")
	var conns []*luatest.Conn
	for range 3 {
		c, err := h.Connect(luatest.ConnectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns { // all three in flight at once, on three states
		for j := range 3 {
			if err := c.Send(string(rune('a'+i))+string(rune('0'+j)), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := h.Settle(); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		for j := range 3 {
			m, ok := c.Next()
			want := string(rune('a'+i)) + string(rune('0'+j)) + " 2000"
			if !ok || m.Data != want {
				t.Fatalf("client %d message %d: %q, %v; want %q", i, j, m.Data, ok, want)
			}
		}
	}
}
