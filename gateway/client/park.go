package client

import (
	"bufio"
	"errors"
	"os"
	"sync"
	"time"
)

// How long a connection waits for input on its goroutine before it is
// parked in the poller: parkAfter once it has had a message, wakeGrace when
// only control frames (a pong, say) woke it.
const (
	parkAfter = 500 * time.Millisecond
	wakeGrace = 20 * time.Millisecond
)

// errParked ends a reading goroutine whose connection was parked.
var errParked = errors.New("connection parked")

// readerPool holds the read buffers of connections that are not parked.
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4096) }}

// awaitInput waits, between frames, until input is buffered. If none
// comes within parkAfter (wakeGrace after a wake-up that brought only
// control frames), the connection is parked (parked is true; the reading
// goroutine must return) unless the idle timeout has passed (err
// is then the deadline error that ends the connection). Nothing is done
// while a message is under way or a close is.
func (c *Client) awaitInput() (parked bool, err error) {
	if c.br.Buffered() > 0 || c.r.InMessage() || c.closing.Load() {
		return false, nil
	}
	wait := wakeGrace
	if c.active {
		wait = parkAfter
	}
	for {
		left := c.opts.IdleTimeout - time.Since(c.idleFrom)
		if left <= 0 {
			return false, os.ErrDeadlineExceeded
		}
		c.nc.SetReadDeadline(time.Now().Add(min(left, wait)))
		if c.closing.Load() { // restore the deadline the close needs
			c.closingReadDeadline()
			return false, nil
		}
		_, err := c.br.Peek(1)
		switch {
		case err == nil:
			return false, nil
		case !errors.Is(err, os.ErrDeadlineExceeded):
			return false, err
		case c.closing.Load():
			c.closingReadDeadline()
			return false, nil
		case left > wait && c.park():
			return true, nil
		}
	}
}

// park gives back the read buffer and arms the poller; it reports false
// when the connection cannot be parked (a close came in, or the poller
// refused) and must go on being read.
func (c *Client) park() bool {
	c.parkMu.Lock()
	defer c.parkMu.Unlock()
	if c.closing.Load() {
		return false
	}
	if err := c.poller.Wait(c.fd, c.unpark); err != nil {
		c.poller = nil // read on a goroutine from now on
		return false
	}
	c.releaseReader()
	c.r.Release()
	c.r.Reset(nil)
	c.active = false
	c.parked = true
	left := c.opts.IdleTimeout - time.Since(c.idleFrom)
	if c.idleTimer == nil {
		c.idleTimer = time.AfterFunc(left, c.unpark)
	} else {
		c.idleTimer.Reset(left)
	}
	return true
}

// unpark starts reading a parked connection again, on a new goroutine:
// input arrived, the idle timeout is due, or a close was requested.
func (c *Client) unpark() {
	c.parkMu.Lock()
	if !c.parked {
		c.parkMu.Unlock()
		return
	}
	c.parked = false
	c.idleTimer.Stop()
	c.parkMu.Unlock()
	go c.read()
}

// releaseReader gives the read buffer back to the pool (or, for the
// handshake's own reader, to the garbage collector).
func (c *Client) releaseReader() {
	if c.br == nil || c.br.Buffered() > 0 {
		return
	}
	if c.pooled {
		c.br.Reset(nil)
		readerPool.Put(c.br)
	}
	c.br, c.pooled = nil, false
}
