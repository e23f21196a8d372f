// Package test drives a real moongate binary, built from this repository,
// over real sockets with a different WebSocket library (coder/websocket)
// from the server's.
package test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// moongateBin is the binary under test, built once by TestMain.
var moongateBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "moongate-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	moongateBin = filepath.Join(dir, "moongate")
	args := []string{"build", "-o", moongateBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/moongate")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building moongate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// writeFiles writes files (name -> content) under dir.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// exampleCopy copies config.example.yaml and scripts/ into a temporary
// folder and returns it. A gateway run there on the example (the default
// config) writes what it makes, the SQLite database under data/ among it,
// there and not into the repository.
func exampleCopy(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "scripts"), os.DirFS("../scripts")); err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string]string{"config.example.yaml": string(example)})
	return dir
}

// gatewayProc is a running moongate process.
type gatewayProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	addr string
	logs *logLines
	done chan struct{}
	err  error
}

// startGateway writes files into a temporary folder and runs
// `moongate run -config config.yaml -listen 127.0.0.1:0` there, waiting
// until it listens. The process is stopped when the test ends.
func startGateway(t testing.TB, files map[string]string, extraArgs ...string) *gatewayProc {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, files)
	args := append([]string{"run", "-config", "config.yaml", "-listen", "127.0.0.1:0", "-log-format", "json", "-log-level", "debug"}, extraArgs...)
	return startGatewayIn(t, dir, args...)
}

// startGatewayIn runs moongate with args in dir and waits until it listens.
// args must include -log-format json.
func startGatewayIn(t testing.TB, dir string, args ...string) *gatewayProc {
	t.Helper()
	return startGatewayEnv(t, dir, nil, args...)
}

// startGatewayEnv is startGatewayIn with extra environment variables.
func startGatewayEnv(t testing.TB, dir string, env []string, args ...string) *gatewayProc {
	t.Helper()
	cmd := exec.Command(moongateBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	return launch(t, cmd)
}

// launch starts cmd, a moongate run, collects its log lines and waits
// until it listens. g.done is closed once the process has exited and every
// line it wrote has been collected.
func launch(t testing.TB, cmd *exec.Cmd) *gatewayProc {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	g := &gatewayProc{t: t, cmd: cmd, logs: &logLines{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 1)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		g.logs.collect(stderr, started)
	}()
	go func() {
		<-collected // Wait closes the pipe: read it to the end first
		g.err = cmd.Wait()
		close(g.done)
	}()
	t.Cleanup(func() { g.kill() })
	select {
	case g.addr = <-started:
	case <-g.done:
		t.Fatalf("moongate exited before listening: %v\n%s", g.err, g.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("moongate did not start listening:\n%s", g.logs)
	}
	return g
}

// url returns the ws:// URL of path on the gateway.
func (g *gatewayProc) url(path string) string { return "ws://" + g.addr + path }

// stop sends SIGTERM and returns the exit code.
func (g *gatewayProc) stop() int {
	g.t.Helper()
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(30 * time.Second):
		g.t.Fatalf("moongate did not stop after SIGTERM:\n%s", g.logs)
	}
	return g.cmd.ProcessState.ExitCode()
}

func (g *gatewayProc) kill() {
	select {
	case <-g.done:
	default:
		g.cmd.Process.Kill()
		<-g.done
	}
}

// waitLog waits until a log line contains every one of parts.
func (g *gatewayProc) waitLog(parts ...string) map[string]any {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if line, ok := g.logs.find(parts...); ok {
			return line
		}
		time.Sleep(10 * time.Millisecond)
	}
	g.t.Fatalf("no log line with %q in:\n%s", parts, g.logs)
	return nil
}

// logLines collects the JSON log lines of a process.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) collect(r io.Reader, started chan<- string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		l.mu.Lock()
		l.lines = append(l.lines, line)
		l.mu.Unlock()
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "moongate started" {
			started <- m["listen"].(string)
		}
	}
	io.Copy(io.Discard, r) // past a line too long to scan: keep the pipe flowing
}

func (l *logLines) find(parts ...string) (map[string]any, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		var m map[string]any
		json.Unmarshal([]byte(line), &m)
		return m, true
	}
	return nil, false
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// dial opens a WebSocket connection, failing the test on error.
func dial(t testing.TB, url string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(64 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// dialStatus attempts a dial expected to be refused and returns the HTTP
// status and body.
func dialStatus(t testing.TB, url string, h http.Header) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if err == nil {
		c.CloseNow()
		t.Fatalf("dial %s: expected a refusal, got a connection", url)
	}
	if resp == nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// send writes a text message.
func send(t testing.TB, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// recv reads one message within 10 s.
func recv(t testing.TB, c *websocket.Conn) (websocket.MessageType, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return typ, string(data)
}

// recvText reads one message and checks that it is text.
func recvText(t testing.TB, c *websocket.Conn) string {
	t.Helper()
	typ, data := recv(t, c)
	if typ != websocket.MessageText {
		t.Fatalf("got a %v message %q, want text", typ, data)
	}
	return data
}

// expectClose reads until the connection closes and returns the close status.
func expectClose(t testing.TB, c *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// count returns how many log lines contain every one of parts.
func (l *logLines) count(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
next:
	for _, line := range l.lines {
		for _, p := range parts {
			if !strings.Contains(line, p) {
				continue next
			}
		}
		n++
	}
	return n
}

// eventually polls cond for up to 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	eventuallyWithin(t, 10*time.Second, what, cond)
}

// eventuallyWithin waits up to d for cond to hold, failing the test if it
// does not.
func eventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
