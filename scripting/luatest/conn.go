package luatest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/client"
)

// Message is one message a simulated client received, as a browser's
// WebSocket would hand it over: whole (fragments joined), text or binary.
type Message struct {
	Binary bool
	Data   string
}

// Conn is a simulated client: the test's end of a connection whose other
// end a real gateway client (gateway/client) serves for the service under
// test. What the service sends is decoded from the wire as a browser would
// see it; what the test sends is framed and masked as a browser would.
type Conn struct {
	h   *Harness
	srv *client.Client // the gateway's side
	nc  net.Conn       // the test's side
	wmu sync.Mutex     // one frame written at a time

	mu        sync.Mutex
	received  []Message
	closed    bool // a close frame came from the service
	code      ws.StatusCode
	reason    string
	closeSent bool  // the test sent a close frame (or answered the service's)
	ended     error // the connection ended (io.EOF when cleanly)
	violation string

	sent      atomic.Int64 // messages the test wrote
	delivered atomic.Int64 // messages the gateway handed to the service
	gone      atomic.Bool  // the gateway told the service the client is gone
	written   atomic.Int64 // bytes the gateway wrote
	processed atomic.Int64 // bytes of the frames the test's side has taken in
	runDone   chan struct{}
	readDone  chan struct{}
}

// countingConn counts what the gateway's side writes.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// readLoop decodes what the service sends until the connection ends.
func (c *Conn) readLoop() {
	defer close(c.readDone)
	br := bufio.NewReader(c.nc)
	var (
		partial []byte
		op      ws.OpCode
		inMsg   bool
	)
	for {
		hd, err := ws.ReadHeader(br)
		if err != nil {
			c.end(err)
			return
		}
		payload := make([]byte, hd.Length)
		if _, err := io.ReadFull(br, payload); err != nil {
			c.end(err)
			return
		}
		size := int64(ws.HeaderSize(hd)) + hd.Length
		if hd.Masked {
			c.violate("a server frame is masked")
			ws.Cipher(payload, hd.Mask, 0)
		}
		switch hd.OpCode {
		case ws.OpPing:
			c.processed.Add(size)
			c.write(ws.OpPong, payload) //nolint:errcheck // the end is seen by the reader
			continue
		case ws.OpPong:
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(payload)
			if len(payload) == 0 {
				code = ws.StatusNoStatusRcvd
			}
			c.mu.Lock()
			answer := !c.closed && !c.closeSent
			c.closed, c.code, c.reason = true, code, reason
			c.closeSent = true
			c.mu.Unlock()
			c.processed.Add(size)
			c.h.activity.Add(1)
			if answer {
				echo := ws.NewCloseFrameBody(code, "")
				if code == ws.StatusNoStatusRcvd {
					echo = nil
				}
				c.write(ws.OpClose, echo) //nolint:errcheck // the end is seen by the reader
			}
			// The handshake is complete (net.Pipe's writes return once
			// read): the browser lets the connection go, which the
			// gateway waits for (it would see the end of a TCP stream).
			c.nc.Close()
			continue
		case ws.OpText, ws.OpBinary:
			if inMsg {
				c.violate("a new message began before the last one ended")
			}
			op, partial, inMsg = hd.OpCode, append(partial[:0], payload...), true
		case ws.OpContinuation:
			if !inMsg {
				c.violate("a continuation frame with no message under way")
			}
			partial = append(partial, payload...)
		default:
			c.violate(fmt.Sprintf("unknown opcode %d", hd.OpCode))
		}
		if hd.Fin && inMsg && hd.OpCode != ws.OpPong {
			inMsg = false
			m := Message{Binary: op == ws.OpBinary, Data: string(partial)}
			if !m.Binary && !utf8.ValidString(m.Data) {
				c.violate("a text message is not valid UTF-8")
			}
			c.mu.Lock()
			c.received = append(c.received, m)
			c.mu.Unlock()
		}
		c.processed.Add(size)
	}
}

// violate notes a breach of RFC 6455 by the service's side, which a
// browser would fail the connection for.
func (c *Conn) violate(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.violation == "" {
		c.violation = what
	}
}

// end notes that the connection has ended.
func (c *Conn) end(err error) {
	c.mu.Lock()
	if c.ended == nil {
		if errors.Is(err, io.ErrClosedPipe) {
			err = io.EOF
		}
		c.ended = err
	}
	c.mu.Unlock()
	c.nc.Close()
}

// write writes one masked frame, as a browser does.
func (c *Conn) write(op ws.OpCode, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	f := ws.MaskFrameInPlace(ws.NewFrame(op, true, payload))
	return ws.WriteFrame(c.nc, f)
}

// Send sends a text or binary message to the service.
func (c *Conn) Send(data string, binary bool) error {
	op := ws.OpText
	if binary {
		op = ws.OpBinary
	}
	c.mu.Lock()
	closing := c.closeSent || c.ended != nil
	c.mu.Unlock()
	if closing {
		return errors.New("the connection is closed")
	}
	c.sent.Add(1)
	if err := c.write(op, []byte(data)); err != nil {
		c.sent.Add(-1)
		return fmt.Errorf("sending: %w", err)
	}
	return nil
}

// Close starts the close handshake with code and reason, as a browser's
// ws.close(code, reason) does.
func (c *Conn) Close(code ws.StatusCode, reason string) error {
	c.mu.Lock()
	if c.closeSent || c.ended != nil {
		c.mu.Unlock()
		return nil
	}
	c.closeSent = true
	c.mu.Unlock()
	var body []byte
	if code != 0 {
		body = ws.NewCloseFrameBody(code, reason)
	}
	if err := c.write(ws.OpClose, body); err != nil {
		return fmt.Errorf("closing: %w", err)
	}
	return nil
}

// Drop ends the connection with no close handshake, as a lost network does.
func (c *Conn) Drop() {
	c.mu.Lock()
	c.closeSent = true
	c.mu.Unlock()
	c.nc.Close()
}

// Next takes the first message received and not yet taken.
func (c *Conn) Next() (Message, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.received) == 0 {
		return Message{}, false
	}
	m := c.received[0]
	c.received = c.received[1:]
	return m, true
}

// Pending returns how many received messages have not been taken.
func (c *Conn) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.received)
}

// CloseStatus reports whether the service sent a close frame, and its
// code and reason.
func (c *Conn) CloseStatus() (closed bool, code ws.StatusCode, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed, c.code, c.reason
}

// Ended reports whether the connection has ended (with or without a
// close frame).
func (c *Conn) Ended() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended != nil
}

// Violation returns the first breach of the protocol seen from the
// service's side, or "".
func (c *Conn) Violation() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.violation
}

// ID returns the id the service knows the client by.
func (c *Conn) ID() string { return c.srv.ID() }

// inputSettled reports whether everything the test sent has reached the
// service: each message handed on, and once a close is under way on
// either side, the client's end reported to the service.
func (c *Conn) inputSettled() bool {
	if c.gone.Load() {
		return true
	}
	c.mu.Lock()
	closing := c.closeSent || c.ended != nil
	c.mu.Unlock()
	if closing || c.srv.Closing() {
		return false
	}
	return c.delivered.Load() == c.sent.Load()
}

// outputSettled reports whether everything the service queued for the
// client has been written and taken in by the test's side.
func (c *Conn) outputSettled() bool {
	if c.Ended() && c.gone.Load() {
		return true
	}
	return c.srv.QueuedBytes() == 0 && c.srv.Queued() == 0 && c.written.Load() == c.processed.Load()
}
