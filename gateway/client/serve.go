package client

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/wsproto"
)

// Closed is how a client's connection ended.
type Closed struct {
	Code   ws.StatusCode
	Reason string
	// Remote is true when the peer started the close handshake.
	Remote bool
}

// maxBatch is how many queued frames one write system call carries at most.
const maxBatch = 64

// Serve runs the upgraded connection nc until it closes. It reads messages
// from src (the connection, or a reader buffering it) and hands each to
// onMessage in order, on the calling goroutine; a second goroutine writes
// the send queue, pings and the close frame. When the client breaks the
// protocol, flush (if not nil) is called before the connection is failed,
// so the service can finish answering the messages that came before. When
// ctx is cancelled the client is shut down with 1001. Serve returns once
// both goroutines have ended and nc is closed.
func (c *Client) Serve(ctx context.Context, nc net.Conn, src io.Reader, onMessage func(wsproto.Message), flush func()) Closed {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop(nc)
	}()
	stop := context.AfterFunc(ctx, c.Shutdown)
	defer stop()

	r := wsproto.NewReader(src, c.maxMessage.Load())
	r.Inflate = c.inflate
	err := c.readLoop(nc, r, onMessage)
	c.endReading(nc, r, err, flush)
	<-writerDone
	if c.close.frame != nil {
		lingerClose(nc, src, c.opts.CloseTimeout)
	}
	nc.Close()
	return Closed{Code: c.close.code, Reason: c.close.reason, Remote: c.close.echo}
}

// readLoop reads messages until the peer closes, breaks the protocol, or
// the connection fails. Once a close is under way, messages are discarded.
func (c *Client) readLoop(nc net.Conn, r *wsproto.Reader, onMessage func(wsproto.Message)) error {
	r.OnPing = c.queuePong
	r.BeforeFrame = func() { c.extendReadDeadline(nc) }
	r.Limit = c.maxMessage.Load
	for {
		m, err := r.Next()
		if err != nil {
			return err
		}
		if c.closing.Load() {
			continue
		}
		c.metrics.MessagesIn.Inc()
		c.metrics.BytesIn.Add(float64(len(m.Data)))
		onMessage(m)
	}
}

// extendReadDeadline pushes the idle deadline forward before each frame,
// unless a close is under way (then the close timeout set by the writer holds).
func (c *Client) extendReadDeadline(nc net.Conn) {
	if c.closing.Load() {
		return
	}
	nc.SetReadDeadline(time.Now().Add(c.opts.IdleTimeout))
	if c.closing.Load() { // a close raced with the line above: restore its deadline
		nc.SetReadDeadline(time.Now().Add(c.opts.CloseTimeout))
	}
}

// endReading settles the close after reading stopped with err.
func (c *Client) endReading(nc net.Conn, r *wsproto.Reader, err error, flush func()) {
	var ce *wsproto.CloseError
	switch {
	case errors.As(err, &ce) && ce.Remote:
		// The peer's close: echo it, unless it answers ours.
		c.closeWith(closeRequest{code: ce.Code, reason: ce.Reason, echo: true})
	case errors.As(err, &ce):
		// A violation: write what is already queued (replies to the messages
		// that came before it), close with its code, then read until the
		// peer answers the close, so that closing the socket neither resets
		// the connection before our close frame is read nor waits for the
		// peer to hang up first.
		if flush != nil {
			flush()
		}
		c.closeWith(closeRequest{code: ce.Code, reason: ce.Reason, drain: true})
		nc.SetReadDeadline(time.Now().Add(c.opts.CloseTimeout))
		r.DrainUntilClose()
	case errors.Is(err, os.ErrDeadlineExceeded) && !c.closing.Load():
		nc.Close()
		c.closeWith(closeRequest{code: ws.StatusAbnormalClosure, reason: "idle timeout", silent: true})
	default:
		nc.Close()
		c.closeWith(closeRequest{code: ws.StatusAbnormalClosure, reason: "connection lost", silent: true})
	}
}

// queuePong answers a ping; when pongs pile up, the extra ones are dropped
// (RFC 6455 allows answering only the latest ping).
func (c *Client) queuePong(payload []byte) {
	select {
	case c.control <- wsproto.Frame(ws.OpPong, payload):
	default:
	}
}

// writeLoop writes queued frames, pongs and pings until a close is
// requested, then writes the close frame and returns.
func (c *Client) writeLoop(nc net.Conn) {
	var ping <-chan time.Time
	if c.opts.PingInterval > 0 {
		t := time.NewTicker(c.opts.PingInterval)
		defer t.Stop()
		ping = t.C
	}
	batch := make([][]byte, 0, maxBatch)
	for {
		if c.closing.Load() { // a close outranks whatever is still queued
			c.writeClose(nc)
			return
		}
		var err error
		select {
		case f := <-c.queue:
			batch = c.collect(append(batch[:0], f))
			err = c.write(nc, batch)
			clear(batch)
		case f := <-c.control:
			err = c.write(nc, [][]byte{f})
		case <-ping:
			err = c.write(nc, [][]byte{ws.CompiledPing})
		case <-c.closeCh:
			c.writeClose(nc)
			return
		}
		if err != nil {
			nc.Close() // the reader sees the failure and settles the close
			<-c.closeCh
			return
		}
	}
}

// collect adds to batch whatever else is queued, up to maxBatch frames.
func (c *Client) collect(batch [][]byte) [][]byte {
	for len(batch) < maxBatch {
		select {
		case f := <-c.queue:
			batch = append(batch, f)
		default:
			return batch
		}
	}
	return batch
}

// writeClose writes what must precede the close frame, then the frame itself.
func (c *Client) writeClose(nc net.Conn) {
	if c.close.silent {
		return
	}
	if c.close.drain {
		c.drainQueue(nc)
	}
	if err := c.write(nc, [][]byte{c.close.frame}); err != nil {
		nc.Close() // the handshake cannot complete
		return
	}
	if !c.close.echo {
		nc.SetReadDeadline(time.Now().Add(c.opts.CloseTimeout)) // for the peer's answer
	}
}

// drainQueue writes every frame still queued.
func (c *Client) drainQueue(nc net.Conn) {
	batch := make([][]byte, 0, maxBatch)
	for {
		batch = c.collect(batch[:0])
		if len(batch) == 0 || c.write(nc, batch) != nil {
			return
		}
	}
}

// write writes frames in one system call where the platform allows.
func (c *Client) write(nc net.Conn, frames [][]byte) error {
	nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	bufs := net.Buffers(frames)
	n, err := bufs.WriteTo(nc)
	c.metrics.MessagesOut.Add(float64(len(frames)))
	c.metrics.BytesOut.Add(float64(n))
	return err
}

// lingerClose ends a connection whose close handshake is over (or given up)
// without resetting it: it shuts the writing side (the peer reads the end of
// the stream), then reads and discards what the peer still sends until it
// hangs up or d passes. Closing a socket with unread data would instead send
// a reset, which can make the peer lose the close frame.
func lingerClose(nc net.Conn, src io.Reader, d time.Duration) {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	nc.SetReadDeadline(time.Now().Add(d))
	io.Copy(io.Discard, io.LimitReader(src, 1<<20))
}
