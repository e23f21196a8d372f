package test

import (
	"bytes"
	"compress/flate"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// conformanceCases follows the categories of the Autobahn|Testsuite:
// 1 framing, 2 pings and pongs, 3 reserved bits, 4 opcodes,
// 5 fragmentation, 6 UTF-8, 7 close handling, 9 big messages, 10
// auto-fragmentation; L for the message size limit and C for
// permessage-deflate.
func conformanceCases() []confCase {
	var cases []confCase
	add := func(id, desc string, run func(*rawConn) (verdict, error)) {
		cases = append(cases, confCase{id, desc, run})
	}
	// 1: framing.
	for i, n := range []int{0, 125, 126, 65535, 65536, 16 << 20} {
		p := bytes.Repeat([]byte("*"), n)
		add(fmt.Sprintf("1.1.%d", i+1), fmt.Sprintf("text message of %d bytes", n), echoCase(ws.OpText, p, frame(true, 0, ws.OpText, p)))
		add(fmt.Sprintf("1.2.%d", i+1), fmt.Sprintf("binary message of %d bytes", n), echoCase(ws.OpBinary, p, frame(true, 0, ws.OpBinary, p)))
	}
	// 2: pings and pongs.
	ping := func(p []byte) func(*rawConn) (verdict, error) {
		return func(c *rawConn) (verdict, error) {
			c.send(frame(true, 0, ws.OpPing, p))
			return strict(c.expectPong(p))
		}
	}
	add("2.1", "ping without payload", ping(nil))
	add("2.2", "ping with a text payload", ping([]byte("Hello, world!")))
	add("2.3", "ping with a binary payload", ping([]byte{0x00, 0xff, 0xfe, 0xfd}))
	add("2.4", "ping with a 125-byte payload", ping(bytes.Repeat([]byte{0xfe}, 125)))
	add("2.5", "ping with a 126-byte payload", closeCase([]int{1002}, frame(true, 0, ws.OpPing, make([]byte, 126))))
	add("2.6", "unsolicited pong, then a message", echoCase(ws.OpText, []byte("after pong"), frame(true, 0, ws.OpPong, []byte("x")), text("after pong")))
	add("2.7", "ten pings in a row", func(c *rawConn) (verdict, error) {
		for i := range 10 {
			c.send(frame(true, 0, ws.OpPing, []byte{byte(i)}))
		}
		// Every pong is best; the RFC allows answering only the latest ping.
		answered, last := 0, -1
		for last != 9 {
			f, err := c.read(5 * time.Second)
			if err != nil || f.Header.OpCode != ws.OpPong || len(f.Payload) != 1 || int(f.Payload[0]) <= last {
				return fail, fmt.Errorf("pongs out of order or missing the last ping's: %v %v", f.Header.OpCode, err)
			}
			answered, last = answered+1, int(f.Payload[0])
		}
		if answered < 10 {
			return nonStrict, nil
		}
		return pass, nil
	})
	// 3: reserved bits.
	for i, rsv := range []byte{4, 2, 1, 6, 7} {
		add(fmt.Sprintf("3.%d", i+1), fmt.Sprintf("text with reserved bits %03b", rsv), closeCase([]int{1002}, frame(true, rsv, ws.OpText, []byte("x"))))
	}
	add("3.6", "ping with a reserved bit", closeCase([]int{1002}, frame(true, 4, ws.OpPing, nil)))
	add("3.7", "a good message, then one with a reserved bit", func(c *rawConn) (verdict, error) {
		c.send(text("fine"), frame(true, 2, ws.OpText, []byte("bad")))
		// The echo is best, but the violation may be seen before the service
		// has answered the good message; Autobahn accepts that as non-strict.
		f, err := c.read(5 * time.Second)
		if err != nil {
			return fail, err
		}
		echoed := f.Header.OpCode == ws.OpText && string(f.Payload) == "fine"
		if !echoed && (f.Header.OpCode != ws.OpClose || closeCode(f.Payload) != 1002) {
			return fail, fmt.Errorf("got %v %q", f.Header.OpCode, f.Payload)
		}
		if echoed {
			return strict(c.expectClose(true, 1002))
		}
		c.send(closeFrame(1000, ""))
		return nonStrict, nil
	})
	// 4: reserved opcodes.
	for i, op := range []ws.OpCode{3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf} {
		add(fmt.Sprintf("4.%d", i+1), fmt.Sprintf("reserved opcode %d", op), closeCase([]int{1002}, frame(true, 0, op, []byte("x"))))
	}
	// 5: fragmentation.
	add("5.1", "fragmented ping", closeCase([]int{1002}, frame(false, 0, ws.OpPing, []byte("a")), frame(true, 0, ws.OpContinuation, []byte("b"))))
	add("5.2", "continuation without a message", closeCase([]int{1002}, frame(true, 0, ws.OpContinuation, []byte("x"))))
	add("5.3", "text in two fragments", echoCase(ws.OpText, []byte("fragment1fragment2"),
		frame(false, 0, ws.OpText, []byte("fragment1")), frame(true, 0, ws.OpContinuation, []byte("fragment2"))))
	add("5.4", "binary in 1-byte fragments", func(c *rawConn) (verdict, error) {
		msg := []byte("0123456789")
		c.send(frame(false, 0, ws.OpBinary, msg[:1]))
		for i := 1; i < len(msg); i++ {
			c.send(frame(i == len(msg)-1, 0, ws.OpContinuation, msg[i:i+1]))
		}
		return strict(c.expectMessage(ws.OpBinary, msg))
	})
	add("5.5", "ping between fragments", func(c *rawConn) (verdict, error) {
		c.send(frame(false, 0, ws.OpText, []byte("frag1")), frame(true, 0, ws.OpPing, []byte("p")), frame(true, 0, ws.OpContinuation, []byte("frag2")))
		// The pong and the echo may come in either order.
		gotPong, gotEcho := false, false
		for !gotPong || !gotEcho {
			f, err := c.read(5 * time.Second)
			switch {
			case err != nil:
				return fail, err
			case f.Header.OpCode == ws.OpPong && string(f.Payload) == "p":
				gotPong = true
			case f.Header.OpCode == ws.OpText && f.Header.Fin && string(f.Payload) == "frag1frag2":
				gotEcho = true
			default:
				return fail, fmt.Errorf("unexpected %v %q", f.Header.OpCode, f.Payload)
			}
		}
		return pass, nil
	})
	add("5.6", "pong between fragments", echoCase(ws.OpText, []byte("ab"),
		frame(false, 0, ws.OpText, []byte("a")), frame(true, 0, ws.OpPong, nil), frame(true, 0, ws.OpContinuation, []byte("b"))))
	add("5.7", "a new message inside an open one", closeCase([]int{1002},
		frame(false, 0, ws.OpText, []byte("a")), frame(true, 0, ws.OpText, []byte("b"))))
	add("5.8", "empty fragments", echoCase(ws.OpText, []byte("x"),
		frame(false, 0, ws.OpText, nil), frame(false, 0, ws.OpContinuation, []byte("x")), frame(true, 0, ws.OpContinuation, nil)))
	add("5.9", "continuation after a complete message", closeCase([]int{1002}, text("done"), frame(true, 0, ws.OpContinuation, []byte("x"))))
	// 6: UTF-8.
	valid := []byte("κόσμε, мир, 世界, 𝄞 and a\u00a0nbsp")
	add("6.1", "valid UTF-8 in one frame", echoCase(ws.OpText, valid, frame(true, 0, ws.OpText, valid)))
	add("6.2", "valid UTF-8 split at every byte", func(c *rawConn) (verdict, error) {
		for cut := 1; cut < len(valid); cut++ {
			c.send(frame(false, 0, ws.OpText, valid[:cut]), frame(true, 0, ws.OpContinuation, valid[cut:]))
			if err := c.expectMessage(ws.OpText, valid); err != nil {
				return fail, fmt.Errorf("cut at %d: %w", cut, err)
			}
		}
		return pass, nil
	})
	add("6.3", "valid UTF-8 in 1-byte fragments", func(c *rawConn) (verdict, error) {
		c.send(frame(false, 0, ws.OpText, valid[:1]))
		for i := 1; i < len(valid); i++ {
			c.send(frame(i == len(valid)-1, 0, ws.OpContinuation, valid[i:i+1]))
		}
		return strict(c.expectMessage(ws.OpText, valid))
	})
	for i, bad := range [][]byte{
		{0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80, 0x65, 0x64}, // surrogate
		{0x80}, {0xbf}, {0xc0, 0xaf}, {0xe0, 0x80, 0xaf}, {0xf4, 0x90, 0x80, 0x80}, {0xf8, 0x88, 0x80, 0x80, 0x80},
		{0xfe}, {0xff}, {0xc2}, {0xed, 0xbf, 0xbf}, {'a', 0xe2, 0x82},
	} {
		add(fmt.Sprintf("6.4.%d", i+1), fmt.Sprintf("invalid UTF-8 % x", bad), closeCase([]int{1007}, frame(true, 0, ws.OpText, bad)))
	}
	add("6.5", "invalid UTF-8 in the first fragment: closed before the rest is sent", func(c *rawConn) (verdict, error) {
		c.send(frame(false, 0, ws.OpText, []byte{'o', 'k', 0xf4, 0x90}))
		if err := c.expectClose(true, 1007); err == nil {
			return pass, nil
		}
		return fail, fmt.Errorf("no close 1007 after the bad fragment alone")
	})
	add("6.6", "invalid UTF-8 across fragments, fail-fast", func(c *rawConn) (verdict, error) {
		c.send(frame(false, 0, ws.OpText, []byte{0xce, 0xba, 0xe1}), frame(false, 0, ws.OpContinuation, []byte{0xbd, 0xb9, 0xed, 0xa0}))
		f, err := c.read(time.Second)
		if err != nil {
			c.send(frame(true, 0, ws.OpContinuation, []byte("end")))
			if c.expectClose(true, 1007) == nil {
				return nonStrict, nil // closed, but only at the end of the message
			}
			return fail, fmt.Errorf("no close after invalid UTF-8: %w", err)
		}
		if f.Header.OpCode != ws.OpClose || closeCode(f.Payload) != 1007 {
			return fail, fmt.Errorf("got %v %d, want close 1007", f.Header.OpCode, closeCode(f.Payload))
		}
		return pass, nil
	})
	// 7: close handling.
	add("7.1", "close with 1000 and a reason: echoed", clientClosesCase([]int{1000}, closeFrame(1000, "bye")))
	add("7.2", "empty close: answered with an empty close", clientClosesCase([]int{0}, frame(true, 0, ws.OpClose, nil)))
	add("7.3", "close with a 1-byte payload", closeCase([]int{1002}, frame(true, 0, ws.OpClose, []byte{3})))
	add("7.4", "close with a 123-byte reason", clientClosesCase([]int{1000}, closeFrame(1000, strings.Repeat("r", 123))))
	add("7.5", "close with a reason that is not UTF-8", closeCase([]int{1007}, frame(true, 0, ws.OpClose, []byte{0x03, 0xe8, 0xff})))
	add("7.6", "a message after close is not processed", func(c *rawConn) (verdict, error) {
		c.send(closeFrame(1000, ""), text("too late"))
		return strict(c.expectClose(false, 1000))
	})
	add("7.7", "ping after close is not answered", func(c *rawConn) (verdict, error) {
		c.send(closeFrame(1000, ""), frame(true, 0, ws.OpPing, []byte("p")))
		return strict(c.expectClose(false, 1000))
	})
	for i, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		add(fmt.Sprintf("7.8.%d", i+1), fmt.Sprintf("valid close code %d: echoed", code), clientClosesCase([]int{code}, closeFrame(code, "")))
	}
	for i, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		add(fmt.Sprintf("7.9.%d", i+1), fmt.Sprintf("invalid close code %d", code), closeCase([]int{1002}, closeFrame(code, "")))
	}
	// 9: big messages in fragments.
	for i, size := range []int{64 << 10, 1 << 20, 4 << 20} {
		p := bytes.Repeat([]byte{'b'}, size)
		add(fmt.Sprintf("9.%d", i+1), fmt.Sprintf("binary message of %d bytes in 4 KiB fragments", size), func(c *rawConn) (verdict, error) {
			for off := 0; off < size; off += 4096 {
				op := ws.OpContinuation
				if off == 0 {
					op = ws.OpBinary
				}
				c.send(frame(off+4096 >= size, 0, op, p[off:min(off+4096, size)]))
			}
			return strict(c.expectMessage(ws.OpBinary, p))
		})
	}
	// 10: a message fragmented as an auto-fragmenting client does (1,300-byte frames).
	add("10.1", "text message of 65536 bytes in 1300-byte fragments", func(c *rawConn) (verdict, error) {
		p := bytes.Repeat([]byte("*"), 65536)
		for off := 0; off < len(p); off += 1300 {
			op := ws.OpContinuation
			if off == 0 {
				op = ws.OpText
			}
			c.send(frame(off+1300 >= len(p), 0, op, p[off:min(off+1300, len(p))]))
		}
		return strict(c.expectMessage(ws.OpText, p))
	})
	// L: the size limit (1 KiB on this endpoint).
	add("L.1", "message at the limit", echoCase(ws.OpText, bytes.Repeat([]byte("a"), 1024), frame(true, 0, ws.OpText, bytes.Repeat([]byte("a"), 1024))))
	add("L.2", "message one byte over the limit", closeCase([]int{1009}, frame(true, 0, ws.OpText, bytes.Repeat([]byte("a"), 1025))))
	add("L.3", "fragments that add up to over the limit", closeCase([]int{1009},
		frame(false, 0, ws.OpBinary, make([]byte, 1000)), frame(true, 0, ws.OpContinuation, make([]byte, 100))))
	add("L.4", "a frame declaring 2^62 bytes", closeCase([]int{1009}, func() []byte {
		var b bytes.Buffer
		ws.WriteHeader(&b, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Length: 1 << 62})
		return b.Bytes()
	}()))
	// C: permessage-deflate (RFC 7692) on an endpoint with compression on.
	poem := bytes.Repeat([]byte("Rain on the roof, κόσμε, rain on the sea. "), 400)
	add("C.1", "permessage-deflate negotiated without context takeover", func(c *rawConn) (verdict, error) {
		want := "permessage-deflate;server_no_context_takeover;client_no_context_takeover"
		if strings.ReplaceAll(c.extensions, " ", "") != want {
			return fail, fmt.Errorf("extensions %q, want %q", c.extensions, want)
		}
		return pass, nil
	})
	add("C.2", "compressed text message", echoCase(ws.OpText, poem, deflateFrame(true, ws.OpText, compress(poem))))
	add("C.3", "compressed binary message in 3 fragments", func(c *rawConn) (verdict, error) {
		z := compress(poem)
		c.send(deflateFrame(false, ws.OpBinary, z[:5]), frame(false, 0, ws.OpContinuation, z[5:20]), frame(true, 0, ws.OpContinuation, z[20:]))
		return strict(c.expectMessage(ws.OpBinary, poem))
	})
	add("C.4", "uncompressed message on a compressing connection", echoCase(ws.OpText, []byte("plain"), text("plain")))
	add("C.5", "decompression bomb: 16 MiB of zeros in a small frame", closeCase([]int{1009}, deflateFrame(true, ws.OpBinary, compress(make([]byte, 16<<20)))))
	add("C.6", "RSV1 on a continuation frame", closeCase([]int{1002}, frame(false, 0, ws.OpText, []byte("a")), frame(true, 4, ws.OpContinuation, []byte("b"))))
	add("C.7", "compressed text that is not UTF-8", closeCase([]int{1007}, deflateFrame(true, ws.OpText, compress([]byte{'a', 0xff}))))
	// T: an endpoint with compression_context_takeover: true.
	add("T.1", "permessage-deflate negotiated with client context takeover", func(c *rawConn) (verdict, error) {
		want := "permessage-deflate;server_no_context_takeover"
		if strings.ReplaceAll(c.extensions, " ", "") != want {
			return fail, fmt.Errorf("extensions %q, want %q", c.extensions, want)
		}
		return pass, nil
	})
	add("T.2", "three messages compressed with one window, each referring back", takeoverCase(0))
	add("T.3", "the same with 700 ms between messages (the connection is parked)", takeoverCase(700*time.Millisecond))
	return cases
}

// takeoverCase sends three messages compressed with one window (context
// takeover), pausing between them, and expects each echoed.
func takeoverCase(pause time.Duration) func(*rawConn) (verdict, error) {
	return func(c *rawConn) (verdict, error) {
		// Letters drawn at random compress poorly alone, and to a few bytes
		// when the window still holds them.
		words := make([]byte, 4000)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range words {
			words[i] = 'a' + byte(rng.IntN(26))
		}
		var b bytes.Buffer
		w, _ := flate.NewWriter(&b, flate.BestCompression)
		alone := len(compress(words))
		for i, line := range [][]byte{words, words, append([]byte("again: "), words...)} {
			time.Sleep(pause)
			b.Reset()
			w.Write(line)
			w.Flush()
			z := bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
			if i > 0 && len(z) > alone/2 {
				return fail, fmt.Errorf("message %d compressed to %d bytes: no back reference to test", i, len(z))
			}
			if err := c.send(deflateFrame(true, ws.OpText, z)); err != nil {
				return fail, err
			}
			if v, err := strict(c.expectMessage(ws.OpText, line)); v != pass {
				return v, err
			}
		}
		return pass, nil
	}
}

// compress deflates p as permessage-deflate sends it (the tail removed).
func compress(p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// deflateFrame is a frame with RSV1, the compression bit, set.
func deflateFrame(fin bool, op ws.OpCode, payload []byte) []byte { return frame(fin, 4, op, payload) }

// handshakeCase checks one opening handshake.
type handshakeCase struct {
	id, desc string
	check    func() error
}

func handshakeCases(addr string) []handshakeCase {
	good := func() http.Header {
		return http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"}}
	}
	expect := func(method string, edit func(http.Header), status int, header string) func() error {
		return func() error {
			h := good()
			if edit != nil {
				edit(h)
			}
			req, _ := http.NewRequest(method, "http://"+addr+"/echo", nil)
			req.Header = h
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			var b strings.Builder
			resp.Header.Write(&b)
			if resp.StatusCode != status || !strings.Contains(b.String(), header) {
				return fmt.Errorf("got %d with\n%s, want %d with %q", resp.StatusCode, b.String(), status, header)
			}
			return nil
		}
	}
	return []handshakeCase{
		{"H.1", "valid handshake", expect("GET", nil, 101, "Sec-Websocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")},
		{"H.2", "missing Sec-WebSocket-Key", expect("GET", func(h http.Header) { h.Del("Sec-Websocket-Key") }, 400, "")},
		{"H.3", "Sec-WebSocket-Key not 16 bytes", expect("GET", func(h http.Header) { h.Set("Sec-Websocket-Key", "c2hvcnQ=") }, 400, "")},
		{"H.4", "Sec-WebSocket-Version 8", expect("GET", func(h http.Header) { h.Set("Sec-Websocket-Version", "8") }, 426, "Sec-Websocket-Version: 13")},
		{"H.5", "POST", expect("POST", nil, 405, "Allow: GET")},
		{"H.6", "no Upgrade header", expect("GET", func(h http.Header) { h.Del("Upgrade") }, 426, "Upgrade: websocket")},
		{"H.7", "Origin of another site", expect("GET", func(h http.Header) { h.Set("Origin", "https://evil.example") }, 403, "")},
		{"H.8", "subprotocols offered: the first one the endpoint speaks is chosen", expect("GET", func(h http.Header) {
			h.Set("Sec-Websocket-Protocol", "mqtt, chat.v1, chat.v2")
		}, 101, "Sec-Websocket-Protocol: chat.v1")},
		{"H.9", "no subprotocol in common: none chosen", func() error {
			h := good()
			h.Set("Sec-Websocket-Protocol", "mqtt")
			req, _ := http.NewRequest("GET", "http://"+addr+"/echo", nil)
			req.Header = h
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Protocol") != "" {
				return fmt.Errorf("got %d with protocol %q", resp.StatusCode, resp.Header.Get("Sec-Websocket-Protocol"))
			}
			return nil
		}},
	}
}
