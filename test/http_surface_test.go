package test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The HTTP surface under hostile input: idle keep-alive connections,
// connection limits, what a connection holds, admin and origin checks,
// static folders, permessage-deflate offers.

// httpConn is a plain TCP connection to the gateway speaking HTTP by hand.
type httpConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *httpConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &httpConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// do writes req (a whole request: line, headers, blank line) and reads
// one response, body included.
func (c *httpConn) do(req string) (*http.Response, string) {
	c.t.Helper()
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.nc, req); err != nil {
		c.t.Fatalf("write request: %v", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

// closedByServer reports whether the server has closed the connection
// (reading gets EOF or a reset), waiting at most d.
func (c *httpConn) closedByServer(d time.Duration) bool {
	c.nc.SetReadDeadline(time.Now().Add(d))
	defer c.nc.SetReadDeadline(time.Time{})
	_, err := c.br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func get(path, host string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
}

func upgradeRequest(path, host string, extra ...string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" +
		strings.Join(extra, "") + "\r\n"
}

func TestIdleKeepAliveHTTPConnectionsAreClosed(t *testing.T) {
	g := startGateway(t, echoFiles(t, "limits: {http_idle_timeout: 500ms}\n"))
	conns := make([]*httpConn, 50)
	for i := range conns {
		conns[i] = dialRaw(t, g.addr)
		if resp, body := conns[i].do(get("/healthz", g.addr)); resp.StatusCode != 200 || body != "ok\n" {
			t.Fatalf("healthz: %d %q", resp.StatusCode, body)
		}
	}
	start := time.Now()
	for i, c := range conns {
		if !c.closedByServer(10 * time.Second) {
			t.Fatalf("keep-alive connection %d still open %s after its request", i, time.Since(start))
		}
	}
	t.Logf("50 idle keep-alive connections closed %s after their last request", time.Since(start))
}

func TestEveryConnectionCountsAgainstTheLimits(t *testing.T) {
	g := startGateway(t, echoFiles(t, "limits: {max_connections: 4, max_per_ip: 3}\n"))
	ctx, cancel := contextWithTimeout(20 * time.Second)
	defer cancel()
	// Idle keep-alive connections fill the per-address limit; a
	// WebSocket client from the same address still gets in: idle HTTP
	// connections are closed to make room.
	var idle []*httpConn
	for range 3 {
		c := dialRaw(t, g.addr)
		c.do(get("/healthz", g.addr))
		idle = append(idle, c)
	}
	ws1, _, err := dialFrom(ctx, g.url("/echo"), "127.0.0.1")
	if err != nil {
		t.Fatalf("a WebSocket client past idle HTTP connections: %v", err)
	}
	defer ws1.CloseNow()
	closed := 0
	for _, c := range idle {
		if c.closedByServer(100 * time.Millisecond) {
			closed++
		}
	}
	if closed == 0 {
		t.Error("no idle keep-alive connection was closed to make room")
	}
	// WebSocket clients fill the global limit.
	for _, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		c, _, err := dialFrom(ctx, g.url("/echo"), src)
		if err != nil {
			t.Fatalf("dial from %s: %v", src, err)
		}
		defer c.CloseNow()
	}
	// Past the limit a plain connection gets one answer, then is closed;
	// an upgrade on it is refused with 503.
	over := dialRaw(t, g.addr)
	resp, _ := over.do(get("/healthz", g.addr))
	if resp.StatusCode != 200 || !resp.Close {
		t.Errorf("healthz past the limit: %d, close %v; want 200 and Connection: close", resp.StatusCode, resp.Close)
	}
	if !over.closedByServer(5 * time.Second) {
		t.Error("a connection past the limit stayed open after its answer")
	}
	over = dialRaw(t, g.addr)
	if resp, _ := over.do(upgradeRequest("/echo", g.addr)); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade past the limit: %d, want 503", resp.StatusCode)
	}
	// Connections that send nothing past the limit are closed too, so
	// that they cannot use up the open-file limit.
	silent := make([]*httpConn, 100)
	for i := range silent {
		silent[i] = dialRaw(t, g.addr)
	}
	start := time.Now()
	closedAtOnce := 0
	for _, c := range silent {
		if c.closedByServer(max(time.Until(start.Add(2*time.Second)), 10*time.Millisecond)) {
			closedAtOnce++
		}
	}
	if closedAtOnce < 80 {
		t.Errorf("%d of 100 silent connections past the limit closed within 2 s, want at least 80", closedAtOnce)
	}
	for i, c := range silent {
		if !c.closedByServer(15 * time.Second) {
			t.Fatalf("silent connection %d past the limit still open after %s", i, time.Since(start))
		}
	}
	t.Logf("100 silent connections past the limit: %d closed at once, all within %s", closedAtOnce, time.Since(start))
	if got := ask(t, ws1, "still here"); got != "still here" {
		t.Errorf("an admitted client: %q", got)
	}
}

// vmHWM returns the gateway's peak resident memory, from /proc.
func vmHWM(t *testing.T, g *gatewayProc) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.cmd.Process.Pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

const headerScript = `
return {
  connect = function(c, req)
    c:set("agent", req.headers["user-agent"] or "none")
  end,
  message = function(c, data)
    c:send(tostring(c:header(data)) .. " " .. c:get("agent"))
  end,
}
`

func TestHugeRequestHeadersHoldNoMemory(t *testing.T) {
	g := startGateway(t, map[string]string{"h.lua": headerScript,
		"config.yaml": "endpoints:\n  - path: /h\n    script: h.lua\n"})
	// A script still reads the headers it is given.
	c := dialWith(t, g.url("/h"), http.Header{"X-Name": {"bob"}, "User-Agent": {"tester"},
		"X-Pad": {strings.Repeat("p", 20<<10)}})
	if got := ask(t, c, "X-Name"); got != "bob tester" {
		t.Errorf("header read by the script: %q", got)
	}
	c.CloseNow()

	before := vmHWM(t, g)
	pad := "X-Pad: " + strings.Repeat("p", 1<<20) + "\r\n"
	var wg sync.WaitGroup
	statuses := make([]int, 100)
	conns := make([]*httpConn, len(statuses))
	for i := range conns {
		conns[i] = dialRaw(t, g.addr)
	}
	for i, rc := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc.nc.SetDeadline(time.Now().Add(20 * time.Second))
			io.WriteString(rc.nc, upgradeRequest("/h", g.addr, pad))
			if resp, err := http.ReadResponse(rc.br, nil); err == nil {
				statuses[i] = resp.StatusCode
			}
		}()
	}
	wg.Wait()
	grown := vmHWM(t, g) - before
	t.Logf("100 upgrades with 1 MiB of headers: statuses %v..., peak RSS grew %d MiB", statuses[:3], grown>>20)
	for i, s := range statuses {
		if s == http.StatusSwitchingProtocols {
			t.Fatalf("connection %d with 1 MiB of headers was upgraded", i)
		}
	}
	if grown > 48<<20 {
		t.Errorf("peak RSS grew by %d MiB for 100 connections with 1 MiB headers", grown>>20)
	}
}

// rawFrame encodes one masked client frame with the given first byte and
// declared payload length, followed by payload (which may be shorter).
func rawFrame(b0 byte, declared int, payload []byte) []byte {
	var f []byte
	f = append(f, b0)
	switch {
	case declared < 126:
		f = append(f, 0x80|byte(declared))
	case declared < 1<<16:
		f = append(f, 0x80|126, byte(declared>>8), byte(declared))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(declared))
	}
	f = append(f, 0, 0, 0, 0) // a zero mask leaves the payload as is
	return append(f, payload...)
}

// upgraded opens a WebSocket connection by hand and returns it after 101.
func upgraded(t *testing.T, g *gatewayProc, path string) *httpConn {
	t.Helper()
	rc := dialRaw(t, g.addr)
	if resp, _ := rc.do(upgradeRequest(path, g.addr)); resp.StatusCode != 101 {
		t.Fatalf("upgrade: %d", resp.StatusCode)
	}
	return rc
}

// closeCode reads frames until a close frame and returns its code, or -1
// when the connection ends without one within d.
func (c *httpConn) closeCode(d time.Duration) int {
	c.nc.SetReadDeadline(time.Now().Add(d))
	for {
		var h [2]byte
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return -1
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var l [2]byte
			io.ReadFull(c.br, l[:])
			n = int(binary.BigEndian.Uint16(l[:]))
		case 127:
			var l [8]byte
			io.ReadFull(c.br, l[:])
			n = int(binary.BigEndian.Uint64(l[:]))
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return -1
		}
		if h[0]&0x0f == 8 && n >= 2 {
			return int(binary.BigEndian.Uint16(p))
		}
	}
}

func TestUnfinishedMessagesAreClosedAfterMessageTimeout(t *testing.T) {
	g := startGateway(t, echoFiles(t, "    message_timeout: 500ms\n    idle_timeout: 120s\n    ping_interval: 0s\n"))
	cases := map[string][]byte{
		"a fragment without its end":      rawFrame(0x01, 1000, make([]byte, 1000)),     // text, FIN=0
		"a frame with half its payload":   rawFrame(0x82, 64<<10, make([]byte, 32<<10)), // binary, FIN=1
		"fragments trickled for too long": append(rawFrame(0x01, 10, make([]byte, 10)), rawFrame(0x00, 10, make([]byte, 10))...),
	}
	for name, frames := range cases {
		t.Run(name, func(t *testing.T) {
			rc := upgraded(t, g, "/echo")
			start := time.Now()
			rc.nc.Write(frames)
			if name == "fragments trickled for too long" {
				go func() { // a continuation every 200 ms never finishes the message
					for range 100 {
						time.Sleep(200 * time.Millisecond)
						if _, err := rc.nc.Write(rawFrame(0x00, 10, make([]byte, 10))); err != nil {
							return
						}
					}
				}()
			}
			if code := rc.closeCode(15 * time.Second); code != 1008 {
				t.Fatalf("close code %d after %s, want 1008", code, time.Since(start))
			}
			t.Logf("closed with 1008 after %s", time.Since(start))
		})
	}
	// A message sent whole in time still goes through.
	c := dial(t, g.url("/echo"))
	if got := ask(t, c, "hello"); got != "hello" {
		t.Errorf("echo: %q", got)
	}
}

func TestAdminRefusesCrossSiteAndForeignHosts(t *testing.T) {
	g := startGateway(t, echoFiles(t, "allowed_hosts: [gw.internal]\n"))
	post := func(host string, headers ...string) int {
		rc := dialRaw(t, g.addr)
		resp, _ := rc.do("POST /admin/reload HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\n" + strings.Join(headers, "") + "\r\n")
		return resp.StatusCode
	}
	_, port, _ := net.SplitHostPort(g.addr)
	cases := []struct {
		name    string
		host    string
		headers []string
		want    int
	}{
		{"cross-site form", g.addr, []string{"Origin: https://evil.example\r\n", "Content-Type: text/plain\r\n"}, 403},
		{"foreign origin with JSON", g.addr, []string{"Origin: https://evil.example\r\n", "Content-Type: application/json\r\n"}, 403},
		{"simple request, no origin", g.addr, []string{"Content-Type: text/plain\r\n"}, 403},
		{"DNS rebinding", "evil.example:" + port, []string{"Content-Type: application/json\r\n"}, 421},
		{"JSON", g.addr, []string{"Content-Type: application/json\r\n"}, 200},
		{"admin header", "localhost:" + port, []string{"X-Moongate-Admin: 1\r\n"}, 200},
		{"allowed host", "gw.internal:" + port, []string{"X-Moongate-Admin: 1\r\n"}, 200},
		{"same origin", g.addr, []string{"Origin: http://" + g.addr + "\r\n", "Content-Type: application/json\r\n"}, 200},
	}
	for _, tc := range cases {
		if got := post(tc.host, tc.headers...); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	rc := dialRaw(t, g.addr)
	if resp, _ := rc.do(get("/admin/status", "evil.example:"+port)); resp.StatusCode != 421 {
		t.Errorf("status through a foreign Host: %d, want 421", resp.StatusCode)
	}
	// moongate reload goes on working.
	out, err := runMoongate(t, "reload", "-addr", g.addr)
	if err != nil {
		t.Errorf("moongate reload: %v\n%s", err, out)
	}
}

func runMoongate(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, moongateBin, args...).CombinedOutput()
	return string(out), err
}

func TestHandshakeThroughAForeignHostIsRefused(t *testing.T) {
	g := startGateway(t, echoFiles(t, ""))
	_, port, _ := net.SplitHostPort(g.addr)
	rc := dialRaw(t, g.addr)
	host := "evil.example:" + port
	if resp, _ := rc.do(upgradeRequest("/echo", host, "Origin: http://"+host+"\r\n")); resp.StatusCode == 101 {
		t.Error("a handshake with a foreign Host and a matching Origin was upgraded")
	}
	rc = dialRaw(t, g.addr)
	if resp, _ := rc.do(upgradeRequest("/echo", "localhost:"+port, "Origin: http://localhost:"+port+"\r\n")); resp.StatusCode != 101 {
		t.Errorf("same-origin handshake through localhost: %d", resp.StatusCode)
	}
}

func TestMetricsExposureIsAConfigChoice(t *testing.T) {
	for expose, want := range map[string]int{"off": 404, "loopback": 200, "public": 200} {
		t.Run(expose, func(t *testing.T) {
			g := startGateway(t, echoFiles(t, "metrics: {expose: "+expose+"}\n"))
			rc := dialRaw(t, g.addr)
			if resp, _ := rc.do(get("/metrics", g.addr)); resp.StatusCode != want {
				t.Errorf("/metrics: %d, want %d", resp.StatusCode, want)
			}
		})
	}
}

func TestStaticServesOnlyRegularFilesInsideItsFolder(t *testing.T) {
	files := echoFiles(t, "static:\n  - prefix: /chatui/\n    dir: www\n")
	files["www/index.html"] = "<h1>chat</h1>"
	files["www/app.js"] = "app()"
	files["www/.env"] = "SECRET=1"
	files["www/.git/config"] = "[core]"
	files["www/sub/page.txt"] = "page"
	files["secret.txt"] = "outside the folder"
	g := startGateway(t, files)
	dir := g.cmd.Dir
	if err := os.Symlink(filepath.Join(dir, "secret.txt"), filepath.Join(dir, "www", "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("app.js", filepath.Join(dir, "www", "inside.js")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc", filepath.Join(dir, "www", "etc")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want int
		body string
	}{
		{"/chatui/", 200, "<h1>chat</h1>"},
		{"/chatui/app.js", 200, "app()"},
		{"/chatui/inside.js", 200, "app()"},
		{"/chatui/sub/page.txt", 200, "page"},
		{"/chatui/link.txt", 404, ""},
		{"/chatui/etc/hostname", 404, ""},
		{"/chatui/.env", 404, ""},
		{"/chatui/.git/config", 404, ""},
		{"/chatui/sub/", 404, ""},
		{"/chatui/%2e%2e/secret.txt", 404, ""},
	}
	for _, tc := range cases {
		rc := dialRaw(t, g.addr)
		resp, body := rc.do(get(tc.path, g.addr))
		if resp.StatusCode != tc.want || (tc.body != "" && body != tc.body) || strings.Contains(body, "outside") || strings.Contains(body, "SECRET") {
			t.Errorf("%s: %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.want, tc.body)
		}
	}
	rc := dialRaw(t, g.addr)
	resp, _ := rc.do(get("/chatui?x=1", g.addr))
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || loc != "/chatui/?x=1" {
		t.Errorf("/chatui: %d to %q, want 301 to /chatui/?x=1", resp.StatusCode, loc)
	}
}

func TestMalformedDeflateOfferUpgradesWithoutCompression(t *testing.T) {
	g := startGateway(t, echoFiles(t, "    compression: true\n"))
	for _, offer := range []string{
		"permessage-deflate; client_max_window_bits=abc",
		"permessage-deflate; server_max_window_bits=99",
		"permessage-deflate; client_max_window_bits=abc, permessage-deflate",
	} {
		rc := dialRaw(t, g.addr)
		resp, _ := rc.do(upgradeRequest("/echo", g.addr, "Sec-WebSocket-Extensions: "+offer+"\r\n"))
		if resp.StatusCode != 101 {
			t.Errorf("offer %q: %d, want 101", offer, resp.StatusCode)
			continue
		}
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); strings.Contains(offer, ", ") != (ext != "") {
			t.Errorf("offer %q: extension answered %q", offer, ext)
		}
		// The connection works.
		msg := make([]byte, 5)
		rand.Read(msg)
		rc.nc.Write(rawFrame(0x82, len(msg), msg))
		rc.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var h [2]byte
		if _, err := io.ReadFull(rc.br, h[:]); err != nil || h[0] != 0x82 || h[1] != 5 {
			t.Errorf("offer %q: echo header %x %v", offer, h, err)
		}
	}
	c := dial(t, g.url("/echo")) // a well-formed offer is still accepted
	if got := ask(t, c, "compressed"); got != "compressed" {
		t.Errorf("echo: %q", got)
	}
}
