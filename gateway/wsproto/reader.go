package wsproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Message is one complete data message from a client.
type Message struct {
	// Op is ws.OpText or ws.OpBinary.
	Op ws.OpCode
	// Data is the unmasked payload. It is only valid until the next call to
	// Reader.Next: copy it to keep it.
	Data []byte
}

// CloseError ends a connection with a close code. It is either the peer's
// own close frame (Remote is true) or a violation found in what the peer sent.
type CloseError struct {
	Code   ws.StatusCode
	Reason string
	Remote bool
}

func (e *CloseError) Error() string {
	if e.Remote {
		return fmt.Sprintf("peer closed: %d %s", e.Code, e.Reason)
	}
	return fmt.Sprintf("close %d: %s", e.Code, e.Reason)
}

func protocolError(format string, args ...any) *CloseError {
	return &CloseError{Code: ws.StatusProtocolError, Reason: fmt.Sprintf(format, args...)}
}

// readChunk bounds how much of a payload is read (and validated) at a time,
// so memory grows with the bytes that actually arrive, not the declared length.
const readChunk = 32 << 10

// keepBuffer is the largest message buffer kept between messages; a larger
// one is released once its message has been handed out.
const keepBuffer = 64 << 10

// Reader reads messages from a client, answering nothing itself: control
// frames are handed to OnPing and OnPong, and a close frame ends reading
// with a *CloseError. A Reader is used by one goroutine.
type Reader struct {
	src io.Reader
	max int64

	// OnPing is called with the payload of each ping (valid during the call).
	OnPing func(payload []byte)
	// OnPong is called with the payload of each pong (valid during the call).
	OnPong func(payload []byte)
	// BeforeFrame, when set, is called before each frame header is read (a
	// connection uses it to push its idle deadline forward, and between
	// messages to wait for input or give up its goroutine); an error it
	// returns is returned by Next, and reading can go on afterwards.
	BeforeFrame func() error
	// Limit, when set, is asked for the size limit as each message starts,
	// so the limit can change while a connection is open.
	Limit func() int64
	// OnMessageStart, when set, is called when a data frame starts a new
	// message, before its payload is read (a connection uses it to give
	// the message a deadline).
	OnMessageStart func()
	// Inflate accepts messages compressed with permessage-deflate (RFC
	// 7692, without context takeover): RSV1 on a message's first frame.
	Inflate bool
	// InflateTakeover keeps the last 32 KiB of inflated messages as the
	// window of the next (the client's context takeover).
	InflateTakeover bool

	hdr       [ws.MaxHeaderSize]byte
	ctrl      [MaxControlPayload]byte
	buf       []byte
	op        ws.OpCode
	inMessage bool
	text      utf8Validator
	left      int64 // payload bytes of the current frame not read yet
	deflated  bool  // the current message is compressed
	inflater  inflater
}

// NewReader returns a Reader of messages of at most maxMessage bytes from src.
func NewReader(src io.Reader, maxMessage int64) *Reader {
	return &Reader{src: src, max: maxMessage}
}

// SetMaxMessage changes the message size limit for messages not yet started.
func (r *Reader) SetMaxMessage(n int64) { r.max = n }

// Reset makes the Reader read from src from now on; what it knows of the
// message under way (if any) is kept. A connection that gives its read
// buffer back while idle uses it to read from a new one.
func (r *Reader) Reset(src io.Reader) { r.src = src }

// InMessage reports whether a message has started and not yet finished.
func (r *Reader) InMessage() bool { return r.inMessage }

// Release drops the buffers kept between messages, unless a message is
// under way; an idle connection calls it to hold no memory it does not need.
func (r *Reader) Release() {
	if r.inMessage {
		return
	}
	r.buf = nil
	r.inflater = inflater{window: r.inflater.window} // the window is the peer's state
}

// Next returns the next complete data message. It returns a *CloseError when
// the peer closed or broke the protocol, and the transport's error otherwise.
func (r *Reader) Next() (Message, error) {
	if cap(r.buf) > keepBuffer {
		r.buf = nil
	}
	for {
		h, err := r.readHeader()
		if err != nil {
			return Message{}, err
		}
		if h.OpCode.IsControl() {
			if err := r.control(h); err != nil {
				return Message{}, err
			}
			continue
		}
		if err := r.startData(h); err != nil {
			return Message{}, err
		}
		if err := r.readData(h); err != nil {
			r.buf, r.inMessage = nil, false
			return Message{}, err
		}
		if !h.Fin {
			r.inMessage = true
			continue
		}
		r.inMessage = false
		if r.deflated {
			return r.inflated()
		}
		if r.op == ws.OpText && !r.text.complete() {
			return Message{}, &CloseError{Code: ws.StatusInvalidFramePayloadData, Reason: "invalid UTF-8 in text message"}
		}
		return Message{Op: r.op, Data: r.buf}, nil
	}
}

// readHeader reads one frame header and checks what applies to every frame.
func (r *Reader) readHeader() (ws.Header, error) {
	if r.BeforeFrame != nil {
		if err := r.BeforeFrame(); err != nil {
			return ws.Header{}, err
		}
	}
	h, err := ws.ReadHeaderBuffer(r.src, r.hdr[:])
	r.left = h.Length
	switch {
	case errors.Is(err, ws.ErrHeaderLengthMSB), errors.Is(err, ws.ErrHeaderLengthUnexpected):
		return h, protocolError("invalid payload length")
	case err != nil:
		return h, err
	case h.Rsv == rsv1 && r.Inflate && (h.OpCode == ws.OpText || h.OpCode == ws.OpBinary):
		// permessage-deflate: checked against the message's place in startData
	case h.Rsv != 0:
		return h, protocolError("reserved bits set without a negotiated extension")
	case h.OpCode.IsReserved():
		return h, protocolError("reserved opcode %d", h.OpCode)
	case !h.Masked:
		return h, protocolError("client frame is not masked")
	}
	return h, nil
}

// control handles a ping, pong or close frame.
func (r *Reader) control(h ws.Header) error {
	if !h.Fin {
		return protocolError("fragmented control frame")
	}
	if h.Length > MaxControlPayload {
		return protocolError("control frame payload over 125 bytes")
	}
	p := r.ctrl[:h.Length]
	if _, err := io.ReadFull(r.src, p); err != nil {
		return err
	}
	r.left = 0
	ws.Cipher(p, h.Mask, 0)
	switch h.OpCode {
	case ws.OpPing:
		if r.OnPing != nil {
			r.OnPing(p)
		}
	case ws.OpPong:
		if r.OnPong != nil {
			r.OnPong(p)
		}
	case ws.OpClose:
		return parseClose(p)
	}
	return nil
}

// parseClose turns a peer's close payload into the CloseError that ends
// reading, or into a violation when the payload itself is wrong.
func parseClose(p []byte) error {
	switch {
	case len(p) == 0:
		return &CloseError{Code: ws.StatusNoStatusRcvd, Remote: true}
	case len(p) == 1:
		return protocolError("close payload of 1 byte")
	}
	code := ws.StatusCode(binary.BigEndian.Uint16(p))
	if !ValidCloseCode(code) {
		return protocolError("invalid close code %d", code)
	}
	reason := p[2:]
	if !utf8.Valid(reason) {
		return &CloseError{Code: ws.StatusInvalidFramePayloadData, Reason: "invalid UTF-8 in close reason"}
	}
	return &CloseError{Code: code, Reason: string(reason), Remote: true}
}

// ValidCloseCode reports whether a peer may send code in a close frame:
// the codes RFC 6455 and the IANA registry define for use on the wire, and
// the ranges 3000-4999 left to libraries and applications.
func ValidCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// startData checks a data frame's place in the message sequence.
func (r *Reader) startData(h ws.Header) error {
	if h.OpCode == ws.OpContinuation {
		if !r.inMessage {
			return protocolError("continuation frame without a message to continue")
		}
		return nil
	}
	if r.inMessage {
		return protocolError("new message started before the previous one finished")
	}
	r.op = h.OpCode
	r.buf = r.buf[:0]
	r.text.reset()
	r.deflated = h.Rsv == rsv1
	if r.Limit != nil {
		r.max = r.Limit()
	}
	if r.OnMessageStart != nil {
		r.OnMessageStart()
	}
	return nil
}

// readData appends a data frame's payload to the message, checking the size
// limit before reading and UTF-8 as each chunk arrives.
func (r *Reader) readData(h ws.Header) error {
	if int64(len(r.buf))+h.Length > r.max {
		return &CloseError{Code: ws.StatusMessageTooBig, Reason: fmt.Sprintf("message over %d bytes", r.max)}
	}
	maskOffset := 0
	for remaining := int(h.Length); remaining > 0; {
		n := min(remaining, readChunk)
		start := len(r.buf)
		r.buf = grow(r.buf, n)
		chunk := r.buf[start : start+n]
		if _, err := io.ReadFull(r.src, chunk); err != nil {
			return err
		}
		ws.Cipher(chunk, h.Mask, maskOffset)
		maskOffset += n
		remaining -= n
		r.left = int64(remaining)
		if r.op == ws.OpText && !r.deflated && !r.text.write(chunk) {
			return &CloseError{Code: ws.StatusInvalidFramePayloadData, Reason: "invalid UTF-8 in text message"}
		}
	}
	return nil
}

// grow extends b's length by n, reallocating when the capacity is short.
func grow(b []byte, n int) []byte {
	if len(b)+n <= cap(b) {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, max(2*cap(b), len(b)+n, 512))
	copy(nb, b)
	return nb
}

// drainLimit is the most of a rule-breaking frame DrainUntilClose skips.
const drainLimit = 1 << 20

// DrainUntilClose reads and discards frames, checking nothing, until the
// peer's close frame (it returns nil) or an error. A connection uses it
// after it failed the connection, to see the peer's answer to its close.
func (r *Reader) DrainUntilClose() error {
	if r.left > drainLimit {
		return errors.New("not draining an oversized frame")
	}
	if _, err := io.CopyN(io.Discard, r.src, r.left); err != nil { // the rest of the frame that broke the rules
		return err
	}
	for {
		h, err := ws.ReadHeaderBuffer(r.src, r.hdr[:])
		if err != nil {
			return err
		}
		if h.OpCode == ws.OpClose {
			return nil
		}
		if _, err := io.CopyN(io.Discard, r.src, h.Length); err != nil {
			return err
		}
	}
}
