package scripting

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/db"
	"github.com/moongate/moongate/gateway/db/dbtest"
)

// dbScript answers "verb arg" requests with the db module.
const dbScript = `
local function reply(c, ok, v)
  if ok then c:send(type(v) == "table" and json.encode(v) or tostring(v))
  else c:send("error: " .. tostring(v)) end
end
return {
  start = function()
    db.exec("main", "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT, n INTEGER)")
  end,
  message = function(c, m)
    local verb, arg = m:match("^(%S+) ?(.*)$")
    if verb == "put" then
      local r = db.exec("main", "INSERT INTO t (name) VALUES (?)", arg)
      c:send("id " .. r.last_id .. " rows " .. r.rows)
    elseif verb == "get" then
      c:send(json.encode(db.query("main", "SELECT id, name, n FROM t WHERE name = ?", arg)))
    elseif verb == "values" then
      reply(c, pcall(function() return db.query("main", "SELECT 9007199254740993 AS big, 42 AS i, 1.5 AS f, NULL AS z, 'x' AS s, ? AS yes, ? AS none", true, nil) end))
    elseif verb == "rollback" then
      local ok, err = pcall(db.tx, "main", function(tx)
        tx:exec("INSERT INTO t (name) VALUES (?)", arg)
        error({code = "nope"})
      end)
      c:send(tostring(ok) .. " " .. json.encode(err) .. " " .. #db.query("main", "SELECT id FROM t WHERE name = ?", arg))
    elseif verb == "commit" then
      db.tx("main", function(tx)
        tx:exec("INSERT INTO t (name) VALUES (?)", arg)
        tx:exec("UPDATE t SET n = (SELECT count(*) FROM t) WHERE name = ?", arg)
      end)
      c:send(json.encode(db.query("main", "SELECT name, n FROM t WHERE name = ?", arg)))
    elseif verb == "stale" then
      local kept
      db.tx("main", function(tx) kept = tx end)
      reply(c, pcall(kept.query, kept, "SELECT 1"))
    elseif verb == "bad" then
      reply(c, pcall(db.query, "main", "SELEC nothing"))
    elseif verb == "other" then
      reply(c, pcall(db.query, "other", "SELECT 1"))
    elseif verb == "co" then
      local f = coroutine.wrap(function(x) coroutine.yield(db.query("main", "SELECT ? AS v", x)[1].v) end)
      c:send(f(arg))
    elseif verb == "table" then
      reply(c, pcall(db.query, "main", "SELECT ?", {1}))
    end
  end,
}`

func serveDB(t *testing.T, script string, dbs dbtest.Set, tune func(*config.Endpoint)) string {
	t.Helper()
	return serveEndpoint(t, script, slog.New(slog.DiscardHandler), func(ep *config.Endpoint) {
		ep.States, ep.Budget, ep.Databases = 1, time.Second, []string{"main"}
		if tune != nil {
			tune(ep)
		}
	}, WithDatabases(dbs))
}

func TestDBQueryExecTx(t *testing.T) {
	addr := serveDB(t, dbScript, dbtest.Set{"main": dbtest.SQLite(t, "main"), "other": dbtest.SQLite(t, "other")}, nil)
	c := dialScript(t, addr, nil)
	evil := `Robert'); DROP TABLE t;--`
	for _, step := range []struct{ send, want string }{
		{"put " + evil, "id 1 rows 1"},
		{"get " + evil, `[{"id":1,"n":null,"name":"Robert'); DROP TABLE t;--"}]`},
		{"values", `[{"big":"9007199254740993","f":1.5,"i":42,"none":null,"s":"x","yes":1,"z":null}]`},
		{"rollback ghost", `false {"code":"nope"} 0`},
		{"commit kept", `[{"n":2,"name":"kept"}]`},
		{"co inside a coroutine", "inside a coroutine"},
		{"stale", "example.lua:34: db transaction used after db.tx returned"},
		{"other", `example.lua:38: db "other" is not granted to endpoint /ws (list it under the endpoint's databases: in the config)`},
	} {
		if got := roundTrip(t, c, step.send); got != step.want && !(strings.HasPrefix(got, "error: ") && strings.HasSuffix(got, "/"+step.want)) {
			t.Errorf("%s:\n got %s\nwant %s", step.send, got, step.want)
		}
	}
	for send, want := range map[string]string{
		"bad":   `example.lua:36: db "main": query: SQL logic error: near "SELEC": syntax error`,
		"table": "a statement takes nil, booleans, numbers and strings, not table",
	} {
		if got := roundTrip(t, c, send); !strings.Contains(got, want) {
			t.Errorf("%s: got %s, want it to contain %s", send, got, want)
		}
	}
	metrics := scrape(t, addr)
	for _, want := range []string{
		`moongate_db_calls_total{database="main",endpoint="/ws",result="error"} 1`, // bad
		`moongate_db_call_duration_seconds_count{database="main",endpoint="/ws"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// gatedDB is a real database whose statements that start with /*gate*/
// wait until the test lets one through, so that a test decides when a
// call that waits is done.
type gatedDB struct {
	db.DB
	gate    chan struct{}
	waiting atomic.Int32
}

func (g *gatedDB) Query(ctx context.Context, sql string, args ...any) (*db.Rows, error) {
	if strings.HasPrefix(sql, "/*gate*/") {
		g.waiting.Add(1)
		defer g.waiting.Add(-1)
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.DB.Query(ctx, sql, args...)
}

// open lets every gated statement through from now on, so that a test
// that stops early does not leave its service waiting at close.
func (g *gatedDB) open() { close(g.gate) }

// suspendScript: "slow" waits on the gate, "fast" answers at once, and
// each handler notes its run in the store's "order" list.
const suspendScript = `
return {
  message = function(c, m)
    if m == "slow" then
      local rows = db.query("main", "/*gate*/ SELECT 'slow done' AS v")
      store.push("order", c:get("name") .. ":slow", 100)
      store.incr("resumed")
      c:send(rows[1].v)
    elseif m == "fast" then
      c:send("fast " .. (store.get("resumed") or 0))
    elseif m == "order" then
      c:send(table.concat(store.range("order", 1, -1), ","))
    else
      store.push("order", c:get("name") .. ":" .. m, 100)
      c:send(m)
    end
  end,
  connect = function(c, req) c:set("name", req.query.name) end,
  close = function(c) store.push("order", c:get("name") .. ":close", 100) end,
}`

func TestDBCallSuspendsOnlyItsHandler(t *testing.T) {
	gated := &gatedDB{DB: dbtest.SQLite(t, "main"), gate: make(chan struct{})}
	addr := serveDB(t, suspendScript, dbtest.Set{"main": gated}, func(ep *config.Endpoint) { ep.Budget = 50 * time.Millisecond })
	t.Cleanup(gated.open)
	a := dialScript(t, addr, []string{"?name=a"})
	b := dialScript(t, addr, []string{"?name=b"})
	sendOnly(t, a, "slow")
	sendOnly(t, a, "second")
	waitFor(t, func() bool { return gated.waiting.Load() == 1 })
	// The state serves b while a's handler waits, longer than the budget.
	for range 3 {
		if got := roundTrip(t, b, "fast"); got != "fast 0" {
			t.Fatalf("b got %q while a waits, want fast 0", got)
		}
	}
	begin := time.Now()
	for time.Since(begin) < 200*time.Millisecond { // four budgets spent waiting
		roundTrip(t, b, "fast")
	}
	gated.gate <- struct{}{}
	for _, want := range []string{"slow done", "second"} {
		if got := readText(t, a); got != want {
			t.Fatalf("a got %q, want %q (a client's events keep their order)", got, want)
		}
	}
	if got := roundTrip(t, b, "order"); got != "a:slow,a:second" {
		t.Fatalf("order %q", got)
	}
}

func TestDBCloseWaitsForTheSuspendedHandler(t *testing.T) {
	gated := &gatedDB{DB: dbtest.SQLite(t, "main"), gate: make(chan struct{})}
	addr := serveDB(t, suspendScript, dbtest.Set{"main": gated}, nil)
	t.Cleanup(gated.open)
	a := dialScript(t, addr, []string{"?name=a"})
	b := dialScript(t, addr, []string{"?name=b"})
	sendOnly(t, a, "slow")
	waitFor(t, func() bool { return gated.waiting.Load() == 1 })
	a.Close(websocket.StatusNormalClosure, "bye")
	roundTrip(t, b, "fast") // the state goes on
	gated.gate <- struct{}{}
	waitFor(t, func() bool { return roundTrip(t, b, "order") == "a:slow,a:close" })
}

func TestSuspendedHandlersAreBounded(t *testing.T) {
	gated := &gatedDB{DB: dbtest.SQLite(t, "main"), gate: make(chan struct{})}
	was := maxSuspended
	maxSuspended = 2 // read as the service makes its state
	addr := serveDB(t, suspendScript, dbtest.Set{"main": gated}, nil)
	maxSuspended = was
	t.Cleanup(gated.open)
	d := dialScript(t, addr, []string{"?name=d"}) // a connect is an event too: dial before the state is full
	var clients []*websocket.Conn
	for _, name := range []string{"a", "b"} {
		c := dialScript(t, addr, []string{"?name=" + name})
		sendOnly(t, c, "slow")
		clients = append(clients, c)
	}
	waitFor(t, func() bool { return gated.waiting.Load() == 2 })
	sendOnly(t, d, "fast") // waits: the state takes no event while two handlers wait
	gated.gate <- struct{}{}
	if got := readText(t, d); got != "fast 1" {
		t.Fatalf("d got %q, want fast 1: served only once a suspended handler had finished", got)
	}
	gated.gate <- struct{}{}
	for _, c := range clients {
		if got := readText(t, c); got != "slow done" {
			t.Fatalf("got %q", got)
		}
	}
}

func TestPostgresCallDoesNotHoldTheState(t *testing.T) {
	pg := dbtest.Postgres(t, "main")
	addr := serveDB(t, `return { message = function(c, m)
      if m == "sleep" then db.query("main", "SELECT pg_sleep(2)") end
      c:send(m)
    end }`, dbtest.Set{"main": pg}, func(ep *config.Endpoint) { ep.Budget = 100 * time.Millisecond })
	a := dialScript(t, addr, nil)
	b := dialScript(t, addr, nil)
	sendOnly(t, a, "sleep")
	sendOnly(t, a, "after")
	got := make(chan string, 2)
	go func() {
		for range 2 {
			_, data, err := a.Read(context.Background())
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(data)
		}
	}()
	for range 5 {
		roundTrip(t, b, "b")
	}
	select {
	case m := <-got:
		t.Fatalf("a got %q before b's five round trips: the state waited on pg_sleep", m)
	default:
	}
	for _, want := range []string{"sleep", "after"} {
		if m := <-got; m != want {
			t.Fatalf("a got %q, want %q", m, want)
		}
	}
}

// readText reads the next message of c.
func readText(t *testing.T, c *websocket.Conn) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// waitFor waits until cond holds, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReloadLetsSuspendedHandlersFinishInTheOldVersion(t *testing.T) {
	gated := &gatedDB{DB: dbtest.SQLite(t, "main"), gate: make(chan struct{})}
	script := `return { message = function(c, m)
      if m == "slow" then c:send("v1 " .. db.query("main", "/*gate*/ SELECT 'slow done' AS v")[1].v)
      else c:send("VERSION " .. m) end
    end }`
	addr, svc := serveService(t, strings.ReplaceAll(script, "VERSION", "v1"), slog.New(slog.DiscardHandler), func(ep *config.Endpoint) {
		ep.States, ep.Databases = 1, []string{"main"}
	}, WithDatabases(dbtest.Set{"main": gated}))
	t.Cleanup(gated.open)
	a := dialScript(t, addr, nil)
	sendOnly(t, a, "slow")
	waitFor(t, func() bool { return gated.waiting.Load() == 1 })
	if err := os.WriteFile(svc.Endpoint().Script, []byte(strings.ReplaceAll(script, "VERSION", "v2")), 0o644); err != nil {
		t.Fatal(err)
	}
	reloaded := make(chan error, 1)
	go func() {
		_, err := svc.Reload()
		reloaded <- err
	}()
	waitFor(t, func() bool { // the new version is current, and waits for the old one to finish
		svc.mu.RLock()
		defer svc.mu.RUnlock()
		return svc.gen.version != svc.Status().Version
	})
	sendOnly(t, a, "after")
	gated.gate <- struct{}{}
	for _, want := range []string{"v1 slow done", "v2 after"} {
		if got := readText(t, a); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if err := <-reloaded; err != nil {
		t.Fatal(err)
	}
}

func TestDBInConnectStartAndTimers(t *testing.T) {
	addr := serveDB(t, `return {
      start = function()
        db.exec("main", "CREATE TABLE tokens (token TEXT PRIMARY KEY, name TEXT)")
        db.exec("main", "INSERT INTO tokens VALUES (?, ?)", "s3cret", "ada")
      end,
      connect = function(c, req)
        local rows = db.query("main", "SELECT name FROM tokens WHERE token = ?", req.query.token)
        if #rows == 0 then return false, 401, "unknown token" end
        c:set("name", rows[1].name)
      end,
      message = function(c, m)
        timer.after(0.001, function()
          local n = db.query("main", "SELECT count(*) AS n FROM tokens")[1].n
          c:send(c:get("name") .. " sees " .. n .. " token")
        end)
      end,
    }`, dbtest.Set{"main": dbtest.SQLite(t, "main")}, nil)
	expectRefusal(t, addr, "?token=wrong", "401", "unknown token")
	c := dialScript(t, addr, []string{"?token=s3cret"})
	if got := roundTrip(t, c, "hi"); got != "ada sees 1 token" {
		t.Fatalf("got %q", got)
	}
}
