package client

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/netpoll"
	"github.com/moongate/moongate/gateway/wsproto"
)

// Closed is how a client's connection ended.
type Closed struct {
	Code   ws.StatusCode
	Reason string
	// Remote is true when the peer started the close handshake.
	Remote bool
}

// Handlers are what a running connection calls.
type Handlers struct {
	// Message is called with each message, in order, from one goroutine
	// at a time. The message's data is valid during the call only.
	Message func(wsproto.Message)
	// Flush, if not nil, is called before the connection is failed for
	// breaking the protocol, so the service can finish answering the
	// messages that came before.
	Flush func()
	// Closed is called once, when the connection has closed.
	Closed func(Closed)
}

// conn is the state of a running connection.
type conn struct {
	nc       net.Conn
	br       *bufio.Reader // nil while parked
	pooled   bool          // br came from readerPool
	r        *wsproto.Reader
	h        Handlers
	stopCtx  func() bool
	idleFrom time.Time // when the last frame started: the idle timeout counts from it
	// messageBy is when the message under way must be complete (zero
	// between messages); only the reading goroutine touches it.
	messageBy time.Time
	// deadlineMu orders the read deadlines set once a close is under way:
	// the idle deadline holds until the writer has sent the close frame,
	// then the close timeout for the peer's answer.
	deadlineMu sync.Mutex
	closeBy    time.Time // once the close frame is sent: when the peer's answer is due
	active     bool      // a message came since the connection was last parked

	poller    *netpoll.Poller // nil: the connection is never parked
	fd        int32
	parkMu    sync.Mutex
	parked    bool
	idleTimer *time.Timer // wakes a parked reader when the idle timeout is due
}

// Run serves the upgraded connection nc, reading from br (the handshake's
// reader, which may hold the first frames). It reads on the calling
// goroutine until the connection closes or goes idle; an idle connection
// is parked in poller (when not nil and nc allows) with no goroutine and
// no read buffer, and read again on a new goroutine when input arrives.
// Writing is done by a goroutine that runs only while there is something
// to write. When ctx is cancelled the client is shut down with 1001.
// h.Closed is called once at the end, on whichever goroutine ends it.
func (c *Client) Run(ctx context.Context, nc net.Conn, br *bufio.Reader, h Handlers, poller *netpoll.Poller) {
	c.nc, c.br, c.h = nc, br, h
	if poller != nil {
		if fd, err := netpoll.FD(nc); err == nil {
			c.poller, c.fd = poller, fd
		}
	}
	c.r = wsproto.NewReader(br, c.maxMessage.Load())
	c.r.Inflate, c.r.InflateTakeover = c.inflate, c.takeover
	c.r.OnPing = c.queuePong
	c.r.BeforeFrame = c.beforeFrame
	c.r.Limit = c.maxMessage.Load
	c.r.OnMessageStart = c.messageStarted
	c.idleFrom = time.Now()
	c.stopCtx = context.AfterFunc(ctx, c.Shutdown)
	c.scheduleFirstPing()
	c.mu.Lock()
	c.running = true // from now on a writer may start
	spawn := (len(c.queue) > 0 || c.closing.Load()) && c.claimWriter()
	c.mu.Unlock()
	if spawn {
		go c.writeLoop()
	}
	c.read()
}

// read reads messages until the connection closes (then finishes it) or
// is parked.
func (c *Client) read() {
	for {
		if c.br == nil {
			c.br, c.pooled = readerPool.Get().(*bufio.Reader), true
			c.br.Reset(c.nc)
			c.r.Reset(c.br)
		}
		m, err := c.r.Next()
		if err == errParked {
			return
		}
		if err != nil {
			c.finish(err)
			return
		}
		c.messageBy = time.Time{}
		if c.closing.Load() { // once a close is under way, messages are discarded
			continue
		}
		c.active = true
		c.metrics.MessagesIn.Inc()
		c.metrics.BytesIn.Add(float64(len(m.Data)))
		c.handOn(m)
	}
}

// beforeFrame runs before each frame header is read: between messages it
// waits for input, parking the connection when none comes (Next then
// returns errParked); then it pushes the idle deadline forward.
func (c *Client) beforeFrame() error {
	if c.poller != nil {
		parked, err := c.awaitInput()
		switch {
		case parked:
			return errParked
		case err != nil:
			return err
		}
	}
	c.extendReadDeadline()
	return nil
}

// extendReadDeadline pushes the idle deadline forward before each frame,
// unless a close is under way (then the close timeout set by the writer holds).
func (c *Client) extendReadDeadline() {
	if c.closing.Load() {
		c.closingReadDeadline()
		return
	}
	c.idleFrom = time.Now()
	c.nc.SetReadDeadline(c.readDeadline())
	if c.closing.Load() { // a close raced with the line above
		c.closingReadDeadline()
	}
}

// readDeadline is when reading gives up: the idle timeout, or sooner the
// deadline of the message under way.
func (c *Client) readDeadline() time.Time {
	d := c.idleFrom.Add(c.opts.IdleTimeout)
	if !c.messageBy.IsZero() && c.messageBy.Before(d) {
		d = c.messageBy
	}
	return d
}

// messageStarted gives the message that starts its deadline: a message
// left unfinished (a fragment without its end, a frame without all its
// payload) ends the connection with 1008 when it passes, which frees the
// message's buffer.
func (c *Client) messageStarted() {
	c.messageBy = time.Now().Add(c.opts.MessageTimeout)
	if !c.closing.Load() {
		c.nc.SetReadDeadline(c.readDeadline())
		if c.closing.Load() {
			c.closingReadDeadline()
		}
	}
}

// messageTimedOut reports whether reading stopped with err because the
// message under way passed its deadline.
func (c *Client) messageTimedOut(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) && !c.messageBy.IsZero() && !time.Now().Before(c.messageBy)
}

// closingReadDeadline sets the read deadline a closing connection needs:
// the idle deadline until the close frame is sent (a writer stuck behind a
// slow reader must not be cut short), then the close timeout.
func (c *Client) closingReadDeadline() {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	if !c.closeBy.IsZero() {
		c.nc.SetReadDeadline(c.closeBy)
	} else {
		c.nc.SetReadDeadline(c.idleFrom.Add(c.opts.IdleTimeout))
	}
}

// closeFrameSent gives the peer the close timeout to answer our close.
func (c *Client) closeFrameSent() {
	c.deadlineMu.Lock()
	defer c.deadlineMu.Unlock()
	c.closeBy = time.Now().Add(c.opts.CloseTimeout)
	c.nc.SetReadDeadline(c.closeBy)
}

// finish settles the close after reading stopped with err, waits for the
// writer, closes the connection and reports how it ended.
func (c *Client) finish(err error) {
	c.endReading(err)
	<-c.writerDone
	c.stopCtx()
	if c.poller != nil {
		c.poller.Forget(c.fd)
	}
	if c.close.frame != nil {
		lingerClose(c.nc, c.br, c.opts.CloseTimeout)
	}
	c.nc.Close()
	c.releaseReader()
	c.h.Closed(Closed{Code: c.close.code, Reason: c.close.reason, Remote: c.close.echo})
}

// endReading records the close that reading stopped with err.
func (c *Client) endReading(err error) {
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
		if c.h.Flush != nil {
			c.h.Flush()
		}
		c.closeWith(closeRequest{code: ce.Code, reason: ce.Reason, drain: true})
		c.nc.SetReadDeadline(time.Now().Add(c.opts.CloseTimeout))
		c.r.DrainUntilClose()
	case c.messageTimedOut(err) && !c.closing.Load():
		// The peer may be in the middle of a frame: our close frame goes
		// out, then the connection is closed without waiting for the
		// rest of what it sends.
		c.closeWith(closeRequest{code: ws.StatusPolicyViolation, reason: "message not finished in time"})
	case errors.Is(err, os.ErrDeadlineExceeded) && !c.closing.Load():
		c.closeWith(closeRequest{code: ws.StatusAbnormalClosure, reason: "idle timeout", silent: true})
		c.nc.SetDeadline(time.Now()) // a writer stuck on a peer that reads nothing gives up now
	default:
		c.closeWith(closeRequest{code: ws.StatusAbnormalClosure, reason: "connection lost", silent: true})
		c.nc.SetDeadline(time.Now())
	}
}

// Cut ends the client at once, without a close handshake; the caller
// also expires the connection's deadlines, to interrupt a blocked read or
// write.
func (c *Client) Cut() {
	c.closeWith(closeRequest{code: ws.StatusAbnormalClosure, reason: "connection cut", silent: true})
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
