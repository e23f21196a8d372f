package scripting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/db/dbtest"
	"github.com/moongate/moongate/gateway/gatewaytest"
	"github.com/moongate/moongate/gateway/metrics"
)

// TestLuaAPIDocExamples runs every example of docs/lua-api.md against a real
// gateway and plays the transcript that follows it.
func TestLuaAPIDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/lua-api.md")
	if err != nil {
		t.Fatal(err)
	}
	examples := docExamples(string(doc))
	if len(examples) < 9 {
		t.Fatalf("found %d examples with transcripts in docs/lua-api.md", len(examples))
	}
	for _, ex := range examples {
		t.Run(ex.section, func(t *testing.T) {
			playTranscript(t, ex)
		})
	}
}

// docExample is a script from the docs and the transcript that tests it.
type docExample struct {
	section    string
	script     string
	files      map[string]string // ```lua file=NAME blocks before the script, written beside it
	transcript []string
}

var fence = regexp.MustCompile("(?s)```lua\n(.*?)```\\s*```transcript\n(.*?)```")

// docExamples finds each lua block directly followed by a transcript block,
// with the files the lua file=NAME blocks since the previous example give.
func docExamples(doc string) []docExample {
	var out []docExample
	from := 0
	for _, m := range fence.FindAllStringSubmatchIndex(doc, -1) {
		heading := strings.LastIndex(doc[:m[0]], "\n## ")
		section := strings.TrimSpace(strings.SplitN(doc[heading+4:], "\n", 2)[0])
		out = append(out, docExample{
			section:    section,
			script:     doc[m[2]:m[3]],
			files:      docFiles(doc[from:m[0]]),
			transcript: strings.Split(strings.TrimSpace(doc[m[4]:m[5]]), "\n"),
		})
		from = m[1]
	}
	return out
}

// serveScript runs script at /ws in two states behind a real listener and
// returns the server's address. The script may use a fresh SQLite database
// called main, and call the docs' backend (docsBackend).
func serveScript(t *testing.T, script string, files map[string]string, options map[string]any, backend string) string {
	t.Helper()
	addr, _ := serveFiles(t, files, script, slog.New(slog.DiscardHandler), func(ep *config.Endpoint) {
		ep.States, ep.Budget, ep.Options = 2, time.Second, options
		ep.Databases, ep.HTTP.Allow = []string{"main"}, []string{backend}
	}, WithDatabases(dbtest.Set{"main": dbtest.SQLite(t, "main")}))
	return addr
}

// docsBackend starts the HTTP server the docs' examples call, as
// options.api: GET /weather?city=Paris answers {"temp":21}, other cities
// 404; POST /echo answers with the request's content type and body.
func docsBackend(t *testing.T) string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /weather", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("city") != "Paris" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"temp":21}`)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Header.Get("Content-Type")+" "+string(body))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// serveEndpoint runs script at /ws with the endpoint's defaults changed by
// tune, logging to log, behind a real listener; it returns the address.
func serveEndpoint(t *testing.T, script string, log *slog.Logger, tune func(*config.Endpoint), opts ...Option) string {
	t.Helper()
	addr, _ := serveService(t, script, log, tune, opts...)
	return addr
}

// serveService is serveEndpoint that also returns the service, whose script
// is example.lua in a temporary folder.
func serveService(t *testing.T, script string, log *slog.Logger, tune func(*config.Endpoint), opts ...Option) (string, *Service) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "example.lua")
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	ep := config.DefaultEndpoint("/ws", path)
	tune(&ep)
	m := metrics.New()
	svc, err := New(ep, log, m.Endpoint(ep.Path), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close) // after the server's shutdown, registered next
	return gatewaytest.Start(t, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{"/ws": svc}, m).Addr, svc
}

// plainHTTP makes a plain HTTP request to the gateway at addr and returns
// its status and body (without a final newline), as "status body".
func plainHTTP(t *testing.T, addr, method, path, body string, h http.Header) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return strings.TrimSuffix(fmt.Sprintf("%d %s", resp.StatusCode, got), "\n")
}

// transcriptLine matches "a> text", "a< text", "a<~ re", "a<binary text",
// "a<close code reason" and "a<= name".
var transcriptLine = regexp.MustCompile(`^(\w+)(>|<~|<binary|<close|<=|<) ?(.*)$`)

func playTranscript(t *testing.T, ex docExample) {
	var options map[string]any
	lines := ex.transcript
	backend := docsBackend(t)
	if len(lines) > 0 && strings.HasPrefix(lines[0], "options ") {
		raw := strings.ReplaceAll(strings.TrimPrefix(lines[0], "options "), "$BACKEND", backend)
		if err := json.Unmarshal([]byte(raw), &options); err != nil {
			t.Fatal(err)
		}
		lines = lines[1:]
	}
	addr := serveScript(t, ex.script, ex.files, options, backend)
	conns := map[string]*websocket.Conn{}
	vars := map[string]string{}
	header := http.Header{}
	var answer string // the last plain HTTP answer: "status body"
	for _, line := range lines {
		fields := strings.Fields(line)
		switch fields[0] {
		case "connect":
			conns[fields[1]] = dialScript(t, addr, fields[2:])
			continue
		case "refused":
			expectRefusal(t, addr, fields[2], fields[3], strings.Join(fields[4:], " "))
			continue
		case "env":
			name, value, _ := strings.Cut(strings.TrimPrefix(line, "env "), "=")
			t.Setenv(name, value)
			continue
		case "header":
			name, value, _ := strings.Cut(strings.TrimPrefix(line, "header "), ":")
			header.Set(name, strings.TrimSpace(value))
			continue
		case "http":
			parts := strings.SplitN(line, " ", 4)
			answer = plainHTTP(t, addr, parts[1], parts[2], strings.Join(parts[3:], ""), header)
			continue
		case "http<":
			if want := strings.TrimPrefix(line, "http< "); answer != want {
				t.Fatalf("%q: got %q", line, answer)
			}
			continue
		}
		m := transcriptLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("bad transcript line %q", line)
		}
		c := conns[m[1]]
		if c == nil {
			t.Fatalf("%q: client %s is not connected", line, m[1])
		}
		playLine(t, c, m[2], expand(m[3], vars), vars, line)
	}
}

// playLine performs one send or expectation of a transcript.
func playLine(t *testing.T, c *websocket.Conn, op, arg string, vars map[string]string, line string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if op == ">" {
		if err := c.Write(ctx, websocket.MessageText, []byte(arg)); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		return
	}
	typ, data, err := c.Read(ctx)
	if op == "<close" {
		want := fmt.Sprintf("%d %s", websocket.CloseStatus(err), closeReason(err))
		if strings.TrimSpace(want) != arg {
			t.Fatalf("%q: connection ended with %v", line, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	got := string(data)
	switch op {
	case "<":
		if typ != websocket.MessageText || got != arg {
			t.Fatalf("%q: got %v %q", line, typ, got)
		}
	case "<binary":
		want, _ := strconv.Unquote(`"` + arg + `"`)
		if typ != websocket.MessageBinary || got != want {
			t.Fatalf("%q: got %v %q", line, typ, got)
		}
	case "<~":
		if !regexp.MustCompile("^" + arg + "$").MatchString(got) {
			t.Fatalf("%q: got %q", line, got)
		}
	case "<=":
		vars[arg] = got
	}
}

func closeReason(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Reason
	}
	return ""
}

// expand replaces {name} with a value kept by "<=".
func expand(s string, vars map[string]string) string {
	for k, v := range vars {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	return s
}

func dialScript(t *testing.T, addr string, query []string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws"+strings.Join(query, ""), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func expectRefusal(t *testing.T, addr, query, status, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+addr+"/ws"+query, nil)
	if err == nil {
		c.CloseNow()
		t.Fatalf("connect %s: accepted, want refusal %s", query, status)
	}
	if resp == nil {
		t.Fatalf("connect %s: %v", query, err)
	}
	body, _ := io.ReadAll(resp.Body)
	if strconv.Itoa(resp.StatusCode) != status || strings.TrimSpace(string(body)) != reason {
		t.Fatalf("connect %s: got %d %q, want %s %q", query, resp.StatusCode, body, status, reason)
	}
}
