package test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// The conformance suite talks raw TCP to the real binary's echo endpoint,
// so it can send any byte sequence, and grades each case like the
// Autobahn|Testsuite: PASS, NON-STRICT (accepted, but not the strictest
// behaviour), or FAIL. Any FAIL fails the test; the results are written to
// test/artifacts/conformance.md and must match docs/conformance.md.

type verdict string

const (
	pass      verdict = "PASS"
	nonStrict verdict = "NON-STRICT"
	fail      verdict = "FAIL"
)

// rawConn is an upgraded connection driven byte by byte.
type rawConn struct {
	nc         net.Conn
	br         *bufio.Reader
	extensions string // the server's Sec-WebSocket-Extensions answer
}

func rawDial(addr, path string, extraHeaders ...string) (*rawConn, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	for _, h := range extraHeaders {
		req += h + "\r\n"
	}
	req += "\r\n"
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		return nil, err
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
	return &rawConn{nc: nc, br: br, extensions: resp.Header.Get("Sec-Websocket-Extensions")}, nil
}

// frame builds a masked client frame with any header bits.
func frame(fin bool, rsv byte, op ws.OpCode, payload []byte) []byte {
	h := ws.Header{Fin: fin, Rsv: rsv, OpCode: op, Masked: true, Mask: [4]byte{0x37, 0xfa, 0x21, 0x3d}, Length: int64(len(payload))}
	var b bytes.Buffer
	ws.WriteHeader(&b, h)
	p := bytes.Clone(payload)
	ws.Cipher(p, h.Mask, 0)
	b.Write(p)
	return b.Bytes()
}

func text(s string) []byte { return frame(true, 0, ws.OpText, []byte(s)) }
func closeFrame(code int, r string) []byte {
	return frame(true, 0, ws.OpClose, append(binary.BigEndian.AppendUint16(nil, uint16(code)), r...))
}

func (c *rawConn) send(frames ...[]byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	for _, f := range frames {
		if _, err := c.nc.Write(f); err != nil {
			return err
		}
	}
	return nil
}

// read returns the next frame from the server within d.
func (c *rawConn) read(d time.Duration) (ws.Frame, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	h, err := ws.ReadHeader(c.br)
	if err != nil {
		return ws.Frame{}, err
	}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		return ws.Frame{}, err
	}
	return ws.Frame{Header: h, Payload: p}, nil
}

// expectMessage reads one data message (reassembling fragments).
func (c *rawConn) expectMessage(op ws.OpCode, payload []byte) error {
	var got []byte
	var gotOp ws.OpCode
	for {
		f, err := c.read(20 * time.Second)
		if err != nil {
			return fmt.Errorf("want a %v message of %d bytes: %w", op, len(payload), err)
		}
		if f.Header.OpCode.IsControl() {
			if f.Header.OpCode == ws.OpClose {
				return fmt.Errorf("want a %v message, got close %v", op, closeCode(f.Payload))
			}
			continue
		}
		if f.Header.OpCode != ws.OpContinuation {
			gotOp = f.Header.OpCode
		}
		got = append(got, f.Payload...)
		if f.Header.Fin {
			break
		}
	}
	if gotOp != op || !bytes.Equal(got, payload) {
		return fmt.Errorf("want %v %d bytes, got %v %d bytes", op, len(payload), gotOp, len(got))
	}
	return nil
}

// expectPong reads a pong carrying payload.
func (c *rawConn) expectPong(payload []byte) error {
	f, err := c.read(5 * time.Second)
	if err != nil {
		return err
	}
	if f.Header.OpCode != ws.OpPong || !bytes.Equal(f.Payload, payload) {
		return fmt.Errorf("want a pong with %q, got %v %q", payload, f.Header.OpCode, f.Payload)
	}
	return nil
}

// expectClose reads until a close frame, which must carry one of codes
// (0 for an empty close), answers it when the server started the close
// (answer), and then expects the server to end the TCP connection cleanly.
func (c *rawConn) expectClose(answer bool, codes ...int) error {
	for {
		f, err := c.read(5 * time.Second)
		if err != nil {
			return fmt.Errorf("want close %v: %w", codes, err)
		}
		if f.Header.OpCode != ws.OpClose {
			continue
		}
		got := closeCode(f.Payload)
		ok := false
		for _, code := range codes {
			ok = ok || got == code
		}
		if !ok {
			return fmt.Errorf("close %d, want %v", got, codes)
		}
		if answer {
			c.send(closeFrame(1000, ""))
		}
		c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, c.br); err != nil {
			return fmt.Errorf("the TCP connection did not end cleanly after the close handshake: %w", err)
		}
		return nil
	}
}

func closeCode(p []byte) int {
	if len(p) < 2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(p))
}

// confCase is one case of the suite.
type confCase struct {
	id, desc string
	run      func(c *rawConn) (verdict, error)
}

// strict turns an error into PASS or FAIL.
func strict(err error) (verdict, error) {
	if err != nil {
		return fail, err
	}
	return pass, nil
}

// echoCase sends frames and expects the echo of one message.
func echoCase(op ws.OpCode, payload []byte, frames ...[]byte) func(*rawConn) (verdict, error) {
	return func(c *rawConn) (verdict, error) {
		if err := c.send(frames...); err != nil {
			return fail, err
		}
		return strict(c.expectMessage(op, payload))
	}
}

// closeCase sends frames and expects the server to fail the connection
// with one of codes (the client answers the server's close).
func closeCase(codes []int, frames ...[]byte) func(*rawConn) (verdict, error) {
	return func(c *rawConn) (verdict, error) {
		c.send(frames...) // the server may close before reading it all
		return strict(c.expectClose(true, codes...))
	}
}

// clientClosesCase sends frames ending the connection from the client's
// side and expects the server to echo the close with one of codes.
func clientClosesCase(codes []int, frames ...[]byte) func(*rawConn) (verdict, error) {
	return func(c *rawConn) (verdict, error) {
		c.send(frames...)
		return strict(c.expectClose(false, codes...))
	}
}

func TestConformance(t *testing.T) {
	files := echoFiles(t, "")
	files["config.yaml"] = "endpoints:\n  - path: /echo\n    script: echo.lua\n    max_message_bytes: 20MiB\n    subprotocols: [chat.v2, chat.v1]\n" +
		"  - path: /small\n    script: echo.lua\n    max_message_bytes: 1KiB\n" +
		"  - path: /deflate\n    script: echo.lua\n    max_message_bytes: 1MiB\n    compression: true\n" +
		"  - path: /takeover\n    script: echo.lua\n    max_message_bytes: 1MiB\n    compression: true\n    compression_context_takeover: true\n"
	g := startGateway(t, files)
	var report strings.Builder
	report.WriteString("| case | what is sent | result |\n| --- | --- | --- |\n")
	failed := 0
	for _, cc := range conformanceCases() {
		path, headers := "/echo", []string(nil)
		switch cc.id[0] {
		case 'L':
			path = "/small"
		case 'C':
			path, headers = "/deflate", []string{"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"}
		case 'T':
			path, headers = "/takeover", []string{"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"}
		}
		c, err := rawDial(g.addr, path, headers...)
		if err != nil {
			t.Fatalf("%s: %v", cc.id, err)
		}
		began := time.Now()
		v, err := cc.run(c)
		c.nc.Close()
		if d := time.Since(began); d > time.Second {
			t.Logf("%s took %s", cc.id, d.Round(time.Millisecond))
		}
		if v == fail {
			failed++
			t.Errorf("%s %s: FAIL: %v", cc.id, cc.desc, err)
		}
		fmt.Fprintf(&report, "| %s | %s | %s |\n", cc.id, cc.desc, v)
	}
	for _, hc := range handshakeCases(g.addr) {
		v := pass
		if err := hc.check(); err != nil {
			v = fail
			failed++
			t.Errorf("%s %s: FAIL: %v", hc.id, hc.desc, err)
		}
		fmt.Fprintf(&report, "| %s | %s | %s |\n", hc.id, hc.desc, v)
	}
	os.MkdirAll("artifacts", 0o755)
	os.WriteFile("artifacts/conformance.md", []byte(report.String()), 0o644)
	doc, err := os.ReadFile("../docs/conformance.md")
	if err != nil || !strings.Contains(string(doc), report.String()) {
		t.Errorf("docs/conformance.md does not show this run's table (see test/artifacts/conformance.md)")
	}
	if failed > 0 {
		t.Errorf("%d cases failed", failed)
	}
}
