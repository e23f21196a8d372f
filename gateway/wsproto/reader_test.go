package wsproto

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// clientFrame builds a masked client frame.
func clientFrame(fin bool, op ws.OpCode, payload []byte) []byte {
	h := ws.Header{Fin: fin, OpCode: op, Masked: true, Mask: [4]byte{1, 2, 3, 4}, Length: int64(len(payload))}
	var buf bytes.Buffer
	ws.WriteHeader(&buf, h)
	p := bytes.Clone(payload)
	ws.Cipher(p, h.Mask, 0)
	buf.Write(p)
	return buf.Bytes()
}

func closePayload(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

func cat(frames ...[]byte) []byte { return bytes.Join(frames, nil) }

func TestReaderAcceptsValidSequences(t *testing.T) {
	split := []byte("héllo wörld €𝄞")
	tests := []struct {
		name  string
		input []byte
		want  []Message
	}{
		{"text", clientFrame(true, ws.OpText, []byte("hi")), []Message{{ws.OpText, []byte("hi")}}},
		{"binary", clientFrame(true, ws.OpBinary, []byte{0, 255}), []Message{{ws.OpBinary, []byte{0, 255}}}},
		{"empty", clientFrame(true, ws.OpText, nil), []Message{{ws.OpText, []byte{}}}},
		{"fragments", cat(clientFrame(false, ws.OpText, []byte("a")), clientFrame(false, ws.OpContinuation, []byte("b")),
			clientFrame(true, ws.OpContinuation, []byte("c"))), []Message{{ws.OpText, []byte("abc")}}},
		{"ping between fragments", cat(clientFrame(false, ws.OpBinary, []byte("a")), clientFrame(true, ws.OpPing, []byte("p")),
			clientFrame(true, ws.OpContinuation, []byte("b"))), []Message{{ws.OpBinary, []byte("ab")}}},
		{"utf-8 split inside runes", cat(clientFrame(false, ws.OpText, split[:2]), clientFrame(false, ws.OpContinuation, split[2:11]),
			clientFrame(false, ws.OpContinuation, split[11:17]), clientFrame(true, ws.OpContinuation, split[17:])),
			[]Message{{ws.OpText, split}}},
		{"two messages", cat(clientFrame(true, ws.OpText, []byte("1")), clientFrame(true, ws.OpText, []byte("2"))),
			[]Message{{ws.OpText, []byte("1")}, {ws.OpText, []byte("2")}}},
		{"large", clientFrame(true, ws.OpBinary, bytes.Repeat([]byte{7}, 200000)),
			[]Message{{ws.OpBinary, bytes.Repeat([]byte{7}, 200000)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.input), 1<<20)
			for i, want := range tt.want {
				m, err := r.Next()
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
				if m.Op != want.Op || !bytes.Equal(m.Data, want.Data) {
					t.Fatalf("message %d: got %v %q, want %v %q", i, m.Op, m.Data, want.Op, want.Data)
				}
			}
			if _, err := r.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the messages: %v, want EOF", err)
			}
		})
	}
}

func TestReaderRejectsViolationsWithTheRFCCode(t *testing.T) {
	unmasked := clientFrame(true, ws.OpText, []byte("x"))
	unmasked[1] &^= 0x80
	unmasked = append(unmasked[:2], []byte("x")...)
	rsv := clientFrame(true, ws.OpText, []byte("x"))
	rsv[0] |= 0x40
	tests := []struct {
		name  string
		input []byte
		code  ws.StatusCode
	}{
		{"unmasked", unmasked, ws.StatusProtocolError},
		{"reserved bits", rsv, ws.StatusProtocolError},
		{"reserved opcode 3", clientFrame(true, 3, nil), ws.StatusProtocolError},
		{"reserved opcode 11", clientFrame(true, 11, nil), ws.StatusProtocolError},
		{"ping over 125", clientFrame(true, ws.OpPing, make([]byte, 126)), ws.StatusProtocolError},
		{"fragmented ping", clientFrame(false, ws.OpPing, nil), ws.StatusProtocolError},
		{"continuation first", clientFrame(true, ws.OpContinuation, []byte("x")), ws.StatusProtocolError},
		{"data inside message", cat(clientFrame(false, ws.OpText, []byte("a")), clientFrame(true, ws.OpText, []byte("b"))), ws.StatusProtocolError},
		{"invalid utf-8", clientFrame(true, ws.OpText, []byte{0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80}), ws.StatusInvalidFramePayloadData},
		{"truncated utf-8 at end", clientFrame(true, ws.OpText, []byte{'a', 0xe2, 0x82}), ws.StatusInvalidFramePayloadData},
		{"invalid utf-8 in first fragment", clientFrame(false, ws.OpText, []byte{0xf4, 0x90}), ws.StatusInvalidFramePayloadData},
		{"close 1 byte", clientFrame(true, ws.OpClose, []byte{3}), ws.StatusProtocolError},
		{"close code 999", clientFrame(true, ws.OpClose, closePayload(999, "")), ws.StatusProtocolError},
		{"close code 1005", clientFrame(true, ws.OpClose, closePayload(1005, "")), ws.StatusProtocolError},
		{"close code 2000", clientFrame(true, ws.OpClose, closePayload(2000, "")), ws.StatusProtocolError},
		{"close reason not utf-8", clientFrame(true, ws.OpClose, closePayload(1000, "\xff")), ws.StatusInvalidFramePayloadData},
		{"too big", clientFrame(true, ws.OpBinary, make([]byte, 1025)), ws.StatusMessageTooBig},
		{"too big in fragments", cat(clientFrame(false, ws.OpBinary, make([]byte, 1000)), clientFrame(true, ws.OpContinuation, make([]byte, 25))), ws.StatusMessageTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.input), 1024)
			_, err := r.Next()
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Remote || ce.Code != tt.code {
				t.Fatalf("got %v, want close %d", err, tt.code)
			}
		})
	}
}

func TestReaderReportsPeerCloseAndControlFrames(t *testing.T) {
	input := cat(clientFrame(true, ws.OpPing, []byte("ping!")), clientFrame(true, ws.OpPong, []byte("pong!")),
		clientFrame(true, ws.OpClose, closePayload(4000, "bye")))
	r := NewReader(bytes.NewReader(input), 1024)
	var pings, pongs []string
	r.OnPing = func(p []byte) { pings = append(pings, string(p)) }
	r.OnPong = func(p []byte) { pongs = append(pongs, string(p)) }
	_, err := r.Next()
	var ce *CloseError
	if !errors.As(err, &ce) || !ce.Remote || ce.Code != 4000 || ce.Reason != "bye" {
		t.Fatalf("got %v, want the peer's close 4000 bye", err)
	}
	if strings.Join(pings, ",") != "ping!" || strings.Join(pongs, ",") != "pong!" {
		t.Fatalf("pings %q pongs %q", pings, pongs)
	}
	r = NewReader(bytes.NewReader(clientFrame(true, ws.OpClose, nil)), 1024)
	if _, err := r.Next(); !errors.As(err, &ce) || ce.Code != ws.StatusNoStatusRcvd || !ce.Remote {
		t.Fatalf("empty close: %v", err)
	}
}

func TestFrameEncoding(t *testing.T) {
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		payload := bytes.Repeat([]byte{'z'}, n)
		frame := Frame(ws.OpText, payload)
		if cap(frame) != len(frame) {
			t.Errorf("%d bytes: frame has spare capacity %d", n, cap(frame)-len(frame))
		}
		got, err := ws.ReadFrame(bytes.NewReader(frame))
		if err != nil || !got.Header.Fin || got.Header.OpCode != ws.OpText || !bytes.Equal(got.Payload, payload) {
			t.Errorf("%d bytes: decoded %v %v", n, got.Header, err)
		}
		if s := FrameString(ws.OpText, string(payload)); !bytes.Equal(s, frame) {
			t.Errorf("%d bytes: FrameString differs from Frame", n)
		}
	}
	long := strings.Repeat("é", 100)
	f, _ := ws.ReadFrame(bytes.NewReader(CloseFrame(1001, long)))
	if len(f.Payload) > 125 || !strings.HasPrefix(long, string(f.Payload[2:])) {
		t.Errorf("close reason not cut on a rune boundary: %q", f.Payload)
	}
}

// TestUTF8ValidatorByteByByte feeds valid and invalid text one byte at a
// time, the hardest split there is.
func TestUTF8ValidatorByteByByte(t *testing.T) {
	valid := []byte("κόσμε, мир, 世界, 𝄞 and a\u00a0nbsp")
	var v utf8Validator
	for i := range valid {
		if !v.write(valid[i : i+1]) {
			t.Fatalf("valid text rejected at byte %d (%#x)", i, valid[i])
		}
	}
	if !v.complete() {
		t.Fatal("valid text reported incomplete")
	}
	for _, bad := range [][]byte{{0xed, 0xa0, 0x80}, {0xf4, 0x90}, {0xc0, 0xaf}, {0xe0, 0x80}, {0xff}} {
		var v utf8Validator
		ok := true
		for i := range bad {
			ok = ok && v.write(bad[i:i+1])
		}
		if ok {
			t.Errorf("% x accepted byte by byte", bad)
		}
	}
}

// deflated compresses p as permessage-deflate does (the tail removed).
func deflated(t *testing.T, p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(p)
	w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

func compressedFrame(fin bool, op ws.OpCode, payload []byte) []byte {
	f := clientFrame(fin, op, payload)
	f[0] |= 0x40 // RSV1
	return f
}

func TestReaderInflatesCompressedMessages(t *testing.T) {
	text := bytes.Repeat([]byte("compress me, κόσμε "), 500)
	z := deflated(t, text)
	input := cat(
		compressedFrame(true, ws.OpText, z),
		clientFrame(true, ws.OpText, []byte("plain")),
		compressedFrame(false, ws.OpBinary, z[:10]), clientFrame(true, ws.OpContinuation, z[10:]),
	)
	r := NewReader(bytes.NewReader(input), 1<<20)
	r.Inflate = true
	for i, want := range []Message{{ws.OpText, text}, {ws.OpText, []byte("plain")}, {ws.OpBinary, text}} {
		m, err := r.Next()
		if err != nil || m.Op != want.Op || !bytes.Equal(m.Data, want.Data) {
			t.Fatalf("message %d: %v %d bytes, %v", i, m.Op, len(m.Data), err)
		}
	}
}

func TestReaderRejectsBadCompression(t *testing.T) {
	bomb := deflated(t, make([]byte, 64<<20)) // 64 MiB of zeros in a few KiB
	tests := []struct {
		name    string
		inflate bool
		input   []byte
		code    ws.StatusCode
	}{
		{"not negotiated", false, compressedFrame(true, ws.OpText, deflated(t, []byte("x"))), ws.StatusProtocolError},
		{"bomb", true, compressedFrame(true, ws.OpBinary, bomb), ws.StatusMessageTooBig},
		{"RSV1 on a continuation", true, cat(clientFrame(false, ws.OpText, []byte("a")), compressedFrame(true, ws.OpContinuation, []byte("b"))), ws.StatusProtocolError},
		{"RSV1 on a ping", true, compressedFrame(true, ws.OpPing, nil), ws.StatusProtocolError},
		{"invalid UTF-8 inside", true, compressedFrame(true, ws.OpText, deflated(t, []byte{0xff, 0xfe})), ws.StatusInvalidFramePayloadData},
		{"not deflate data", true, compressedFrame(true, ws.OpText, []byte{0xff, 0xff, 0xff}), ws.StatusInvalidFramePayloadData},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.input), 1<<20)
			r.Inflate = tt.inflate
			_, err := r.Next()
			var ce *CloseError
			if !errors.As(err, &ce) || ce.Code != tt.code {
				t.Fatalf("got %v, want close %d", err, tt.code)
			}
		})
	}
	if len(bomb) > 200<<10 {
		t.Fatalf("the bomb is %d bytes: not a bomb", len(bomb))
	}
}
