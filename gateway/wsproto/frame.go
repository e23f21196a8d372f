package wsproto

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// MaxControlPayload is the largest payload a control frame may carry.
const MaxControlPayload = 125

// headerLen returns the size of an unmasked server frame header for a payload of n bytes.
func headerLen(n int) int {
	switch {
	case n <= 125:
		return 2
	case n <= 0xFFFF:
		return 4
	default:
		return 10
	}
}

// appendHeader appends an unmasked, final frame header for op and a payload of n bytes.
func appendHeader(dst []byte, op ws.OpCode, n int) []byte {
	b0 := 0x80 | byte(op)
	switch {
	case n <= 125:
		return append(dst, b0, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(dst, b0, 126), uint16(n))
	default:
		return binary.BigEndian.AppendUint64(append(dst, b0, 127), uint64(n))
	}
}

// AppendFrame appends a complete unmasked, final frame of kind op to dst.
func AppendFrame(dst []byte, op ws.OpCode, payload []byte) []byte {
	return append(appendHeader(dst, op, len(payload)), payload...)
}

// Frame returns a complete unmasked, final frame of kind op, in one allocation
// of exactly the frame's size. The result is never modified afterwards, so it
// can be queued to any number of clients.
func Frame(op ws.OpCode, payload []byte) []byte {
	return AppendFrame(make([]byte, 0, headerLen(len(payload))+len(payload)), op, payload)
}

// FrameString is Frame for a string payload, without an intermediate copy.
func FrameString(op ws.OpCode, payload string) []byte {
	b := appendHeader(make([]byte, 0, headerLen(len(payload))+len(payload)), op, len(payload))
	return append(b, payload...)
}

// CloseFrame returns a close frame carrying code and reason. The reason is
// cut to fit the 125-byte control frame limit without splitting a UTF-8
// sequence. A zero code yields an empty close frame.
func CloseFrame(code ws.StatusCode, reason string) []byte {
	if code == 0 {
		return Frame(ws.OpClose, nil)
	}
	reason = truncateUTF8(reason, MaxControlPayload-2)
	body := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), uint16(code))
	return Frame(ws.OpClose, append(body, reason...))
}

// truncateUTF8 cuts s to at most n bytes, backing off so no rune is split.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
