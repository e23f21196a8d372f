package test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/moongate/moongate/gateway/db/dbtest"
)

// chatRound says texts in lobby as nick and returns the ids the messages
// came back with; it then checks a join's history: the room's last
// messages, the ones said before it (ids and texts) included.
func chatRound(t *testing.T, g *gatewayProc, nick string, texts ...string) []string {
	t.Helper()
	c := login(t, g.url("/chat"), nick)
	defer c.conn.CloseNow()
	c.join("lobby")
	var ids []string
	for _, text := range texts {
		c.send(map[string]any{"type": "say", "room": "lobby", "text": text})
		for {
			e := c.next()
			if e.str("type") == "message" {
				if e.str("text") != text {
					t.Fatalf("%s: got %v, want the message %q", nick, e, text)
				}
				ids = append(ids, e.str("id"))
				break
			}
		}
	}
	return ids
}

// historyOf joins lobby as nick and returns its history as "id:text".
func historyOf(t *testing.T, g *gatewayProc, nick string) []string {
	t.Helper()
	c := login(t, g.url("/chat"), nick)
	defer c.conn.CloseNow()
	var out []string
	for _, m := range c.join("lobby")["history"].([]any) {
		e := event(m.(map[string]any))
		out = append(out, e.str("id")+":"+e.str("text"))
	}
	return out
}

// checkKeptAcrossRestart runs the chat in dir (config.yaml there), says
// three messages, restarts the gateway, and checks that a join still
// returns them and that the next id is greater than every earlier one.
func checkKeptAcrossRestart(t *testing.T, dir, config string) {
	args := []string{"run", "-config", config, "-listen", "127.0.0.1:0", "-log-format", "json"}
	g := startGatewayIn(t, dir, args...)
	ids := chatRound(t, g, "ada", "one", "two", "three")
	if code := g.stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	g = startGatewayIn(t, dir, args...)
	got := historyOf(t, g, "bob")
	want := []string{ids[0] + ":one", ids[1] + ":two", ids[2] + ":three"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history after a restart: %v, want %v", got, want)
	}
	next := chatRound(t, g, "cy", "four")[0]
	for _, id := range ids {
		if number(t, next) <= number(t, id) {
			t.Errorf("id %s after a restart is not greater than %s, issued before", next, id)
		}
	}
}

func number(t *testing.T, id string) int64 {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		t.Fatalf("id %q is not a number: %v", id, err)
	}
	return n
}

func TestChatKeepsHistoryAcrossRestartInSQLite(t *testing.T) {
	checkKeptAcrossRestart(t, exampleCopy(t), "config.example.yaml") // the default config: SQLite under data/
}

func TestChatKeepsHistoryAcrossRestartInPostgres(t *testing.T) {
	pg := dbtest.Postgres(t, "setup")
	schema := "chat_" + randomHex(t)
	if _, err := pg.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	files := chatFiles(t, 2, "    databases: [main]\n")
	files["config.yaml"] = fmt.Sprintf("databases:\n  main: {driver: postgres, dsn: %q}\n", dbtest.PostgresDSN()+"?search_path="+schema) + files["config.yaml"]
	dir := t.TempDir()
	writeFiles(t, dir, files)
	checkKeptAcrossRestart(t, dir, "config.yaml")
}

func TestChatIdsNeverRepeatWithoutADatabase(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, chatFiles(t, 2, ""))
	args := []string{"run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json"}
	g := startGatewayIn(t, dir, args...)
	before := chatRound(t, g, "ada", "one", "two")
	g.stop()
	g = startGatewayIn(t, dir, args...)
	after := chatRound(t, g, "ada", "three", "four")
	for _, a := range after {
		for _, b := range before {
			if a == b {
				t.Errorf("id %s given again after a restart (before %v, after %v)", a, before, after)
			}
		}
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestChatTellsWhenItsDatabaseIsDownAndRecovers(t *testing.T) {
	pg := dbtest.Postgres(t, "setup")
	schema := "chat_" + randomHex(t)
	if _, err := pg.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE") })
	u, err := url.Parse(dbtest.PostgresDSN())
	if err != nil {
		t.Fatal(err)
	}
	proxy := dbtest.NewProxy(t, u.Host)
	u.Host = proxy.Addr()
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	files := chatFiles(t, 1, "    databases: [main]\n    options: {rate_limit: 100000}\n")
	files["config.yaml"] = fmt.Sprintf("databases:\n  main: {driver: postgres, dsn: %q, timeout: 2s}\n", u.String()) + files["config.yaml"]
	g := startGateway(t, files)

	ada := login(t, g.url("/chat"), "ada")
	ada.join("lobby")
	say := func(text string) event {
		ada.send(map[string]any{"type": "say", "room": "lobby", "text": text})
		return ada.next()
	}
	if e := say("one"); e.str("type") != "message" {
		t.Fatalf("got %v", e)
	}
	proxy.SetDown(true)
	if e := say("two"); e.str("type") != "error" || e.str("code") != "unavailable" || e.str("ref") != "say" {
		t.Fatalf("with the database down, say got %v, want an unavailable error", e)
	}
	proxy.SetDown(false)
	eventually(t, "a message stored once the database is back", func() bool {
		e := say("three")
		if e.str("type") == "error" && e.str("code") == "unavailable" {
			return false
		}
		if e.str("type") != "message" || e.str("text") != "three" {
			t.Fatalf("got %v", e)
		}
		return true
	})
	var texts []string
	for _, h := range historyOf(t, g, "bob") {
		texts = append(texts, h[strings.Index(h, ":")+1:])
	}
	if got := strings.Join(texts, ","); got != "one,three" {
		t.Errorf("history %s, want one,three: what failed to be stored was never sent", got)
	}
}
