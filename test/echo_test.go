package test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// echoFiles is a config serving the shipped echo script at /echo.
func echoFiles(t testing.TB, extra string) map[string]string {
	src, err := os.ReadFile("../scripts/echo.lua")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"echo.lua": string(src),
		"config.yaml": `endpoints:
  - path: /echo
    script: echo.lua
    max_message_bytes: 20MiB
` + extra,
	}
}

func TestEchoReturnsEveryMessageWithItsOpcode(t *testing.T) {
	g := startGateway(t, echoFiles(t, ""))
	c := dial(t, g.url("/echo"))
	for _, size := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20} {
		for _, typ := range []websocket.MessageType{websocket.MessageText, websocket.MessageBinary} {
			msg := bytes.Repeat([]byte("m"), size)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if err := c.Write(ctx, typ, msg); err != nil {
				t.Fatalf("write %d bytes: %v", size, err)
			}
			gotType, got, err := c.Read(ctx)
			cancel()
			if err != nil {
				t.Fatalf("read %d bytes: %v", size, err)
			}
			if gotType != typ || !bytes.Equal(got, msg) {
				t.Fatalf("size %d %v: got %v message of %d bytes", size, typ, gotType, len(got))
			}
		}
	}
}

func TestEchoKeepsOrderAcrossManyClients(t *testing.T) {
	g := startGateway(t, echoFiles(t, ""))
	const clients, messages = 20, 50
	errs := make(chan error, clients)
	for i := range clients {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, _, err := websocket.Dial(ctx, g.url("/echo"), nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.CloseNow()
			for j := range messages {
				want := strings.Repeat("x", i) + "-" + string(rune('a'+j%26))
				if err := c.Write(ctx, websocket.MessageText, []byte(want)); err != nil {
					errs <- err
					return
				}
				_, got, err := c.Read(ctx)
				if err != nil || string(got) != want {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestMessageOverLimitClosesWith1009(t *testing.T) {
	files := echoFiles(t, "")
	files["config.yaml"] = "endpoints:\n  - path: /echo\n    script: echo.lua\n    max_message_bytes: 1KiB\n"
	g := startGateway(t, files)
	c := dial(t, g.url("/echo"))
	send(t, c, strings.Repeat("a", 1024))
	if got := recvText(t, c); len(got) != 1024 {
		t.Fatalf("a message at the limit came back with %d bytes", len(got))
	}
	send(t, c, strings.Repeat("a", 1025))
	if code, _ := expectClose(t, c); code != websocket.StatusMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
}

// TestCompressionWithAnotherLibrary negotiates permessage-deflate with
// coder/websocket, which then compresses what it sends.
func TestCompressionWithAnotherLibrary(t *testing.T) {
	files := echoFiles(t, "")
	files["config.yaml"] = "endpoints:\n  - path: /echo\n    script: echo.lua\n    compression: true\n    max_message_bytes: 1MiB\n"
	g := startGateway(t, files)
	for _, mode := range []websocket.CompressionMode{websocket.CompressionNoContextTakeover, websocket.CompressionContextTakeover} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, resp, err := websocket.Dial(ctx, g.url("/echo"), &websocket.DialOptions{CompressionMode: mode})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.HasPrefix(ext, "permessage-deflate") {
			t.Errorf("mode %v: extensions %q", mode, ext)
		}
		for _, msg := range []string{strings.Repeat("squeeze me ", 20000), "short", strings.Repeat("again ", 30000)} {
			c.Write(ctx, websocket.MessageText, []byte(msg))
			if _, got, err := c.Read(ctx); err != nil || string(got) != msg {
				t.Fatalf("mode %v: echo of %d bytes: %d bytes, %v", mode, len(msg), len(got), err)
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
		cancel()
	}
}
