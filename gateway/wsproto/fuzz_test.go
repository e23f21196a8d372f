package wsproto

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// FuzzReader feeds arbitrary bytes to the reader: it must never panic,
// never return a message over the limit or a text message that is not
// UTF-8, and end every stream with an error.
func FuzzReader(f *testing.F) {
	f.Add(clientFrame(true, ws.OpText, []byte("hello")))
	f.Add(cat(clientFrame(false, ws.OpText, []byte("he")), clientFrame(true, ws.OpPing, nil), clientFrame(true, ws.OpContinuation, []byte("llo"))))
	f.Add(clientFrame(true, ws.OpBinary, bytes.Repeat([]byte{1}, 300)))
	f.Add(clientFrame(true, ws.OpClose, closePayload(1000, "bye")))
	f.Add(clientFrame(true, ws.OpText, []byte{0xf0, 0x9d, 0x84, 0x9e}))
	f.Add(clientFrame(false, ws.OpText, []byte{0xce}))
	f.Add([]byte{0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4})
	f.Add([]byte{0x82, 0x80})
	const limit = 1024
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), limit)
		for range 1000 {
			m, err := r.Next()
			if err != nil {
				var ce *CloseError
				if !errors.As(err, &ce) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error type %T: %v", err, err)
				}
				return
			}
			if len(m.Data) > limit {
				t.Fatalf("message of %d bytes over the %d limit", len(m.Data), limit)
			}
			if m.Op == ws.OpText && !utf8.Valid(m.Data) {
				t.Fatalf("invalid UTF-8 text accepted: %q", m.Data)
			}
			if m.Op != ws.OpText && m.Op != ws.OpBinary {
				t.Fatalf("message with opcode %v", m.Op)
			}
		}
	})
}
