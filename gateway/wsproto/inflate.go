package wsproto

import (
	"bytes"
	"compress/flate"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// rsv1 is the header's Rsv value with only RSV1 set: the compression bit.
const rsv1 = 4

// deflateTail ends every compressed message on the wire once removed
// (RFC 7692, section 7.2.1).
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

// windowSize is the largest window permessage-deflate may refer back to.
const windowSize = 32 << 10

// inflater decompresses messages, keeping its buffers between them.
type inflater struct {
	src    io.ReadCloser
	in     bytes.Reader
	out    []byte
	window []byte // with context takeover: the end of what came before
}

// inflated decompresses the message in r.buf, stopping as soon as it would
// pass the size limit (so a small frame that inflates to gigabytes costs
// no more than the limit), and checks UTF-8 for text.
func (r *Reader) inflated() (Message, error) {
	in := &r.inflater
	in.in.Reset(append(r.buf, deflateTail...))
	if in.src == nil {
		in.src = flate.NewReaderDict(&in.in, in.window)
	} else {
		in.src.(flate.Resetter).Reset(&in.in, in.window)
	}
	out := bytes.NewBuffer(in.out[:0])
	n, err := io.Copy(out, io.LimitReader(in.src, r.max+1))
	in.out = out.Bytes()
	if r.InflateTakeover && n <= r.max {
		in.slide(out.Bytes())
	}
	if cap(in.out) > keepBuffer {
		in.out = nil
	}
	switch {
	case n > r.max:
		return Message{}, &CloseError{Code: ws.StatusMessageTooBig, Reason: fmt.Sprintf("message over %d bytes once inflated", r.max)}
	case err != nil && err != io.ErrUnexpectedEOF:
		return Message{}, &CloseError{Code: ws.StatusInvalidFramePayloadData, Reason: "bad deflate data: " + err.Error()}
	case r.op == ws.OpText && !utf8.Valid(out.Bytes()):
		return Message{}, &CloseError{Code: ws.StatusInvalidFramePayloadData, Reason: "invalid UTF-8 in text message"}
	}
	return Message{Op: r.op, Data: out.Bytes()}, nil
}

// slide appends msg to the window, keeping its last windowSize bytes.
func (in *inflater) slide(msg []byte) {
	if len(msg) >= windowSize {
		in.window = append(in.window[:0], msg[len(msg)-windowSize:]...)
		return
	}
	if drop := len(in.window) + len(msg) - windowSize; drop > 0 {
		in.window = append(in.window[:0], in.window[drop:]...)
	}
	in.window = append(in.window, msg...)
}
