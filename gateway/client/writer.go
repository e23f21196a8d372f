package client

import (
	"math/rand/v2"
	"net"
	"time"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/wsproto"
)

// maxBatch is how many queued frames one write system call carries at most.
const maxBatch = 64

// maxControl bounds the pongs and pings waiting to be written; when it is
// reached the oldest is dropped (RFC 6455 allows answering only the latest
// ping).
const maxControl = 16

// How long a writer with nothing to write waits for more before its
// goroutine ends (so an idle client holds no writer goroutine): dataLinger
// once it has written a message, so that a client that gets a message
// every few hundred milliseconds keeps its writer; controlLinger when it
// has written only pings and pongs.
const (
	dataLinger    = time.Second
	controlLinger = 20 * time.Millisecond
)

// claimWriter, called with c.mu held after something was queued, reports
// whether the caller must start a writer goroutine; if one runs, it is
// woken instead.
func (c *Client) claimWriter() bool {
	if !c.running {
		return false // Run starts the writer
	}
	if c.writing {
		select {
		case c.notify <- struct{}{}:
		default:
		}
		return false
	}
	c.writing = true
	return true
}

// queueControl queues a pong or ping frame, dropping the oldest waiting
// when too many do.
func (c *Client) queueControl(frame []byte) {
	c.mu.Lock()
	if c.closing.Load() {
		c.mu.Unlock()
		return
	}
	if len(c.control) >= maxControl {
		c.control = append(c.control[:0], c.control[1:]...)
	}
	c.control = append(c.control, frame)
	spawn := c.claimWriter()
	c.mu.Unlock()
	if spawn {
		go c.writeLoop()
	}
}

// queuePong answers a ping.
func (c *Client) queuePong(payload []byte) {
	c.queueControl(wsproto.Frame(ws.OpPong, payload))
}

// schedulePing queues a ping after the ping interval, and so on until the
// client closes.
func (c *Client) schedulePing() {
	if c.opts.PingInterval > 0 {
		time.AfterFunc(c.opts.PingInterval, c.pingNow)
	}
}

// scheduleFirstPing queues the first ping at a random time in the second
// half of the interval, so that clients that connected together are not
// all pinged (and woken by their pongs) at once.
func (c *Client) scheduleFirstPing() {
	if d := c.opts.PingInterval; d > 0 {
		time.AfterFunc(d/2+rand.N(d/2+1), c.pingNow)
	}
}

// pingNow queues a ping and schedules the next.
func (c *Client) pingNow() {
	if c.closing.Load() {
		return
	}
	c.queueControl(ws.CompiledPing)
	c.schedulePing()
}

// writeLoop writes what is queued until nothing has been queued for
// its linger time, or until a close is requested: then it writes the close
// frame (after the queue, for a draining close) and ends for good.
func (c *Client) writeLoop() {
	linger := time.NewTimer(controlLinger)
	defer linger.Stop()
	batch := make([][]byte, 0, 4) // grows to maxBatch under load
	out := new(net.Buffers)       // reused: a write allocates nothing
	lastWrite, wait := time.Now(), controlLinger
	var written int64 // bytes of data frames written since the last take
	for {
		var closing, data bool
		batch, written, data, closing = c.take(batch[:0], written)
		if closing {
			c.writeClose()
			close(c.writerDone)
			return
		}
		if len(batch) > 0 {
			*out = batch
			err := c.writeBuffers(out)
			clear(batch)
			if err != nil {
				c.fail()
				return
			}
			lastWrite = time.Now() // cheaper than moving the timer each write
			if data {
				wait = dataLinger
			}
			continue
		}
		select {
		case <-c.notify:
		case <-linger.C:
			if idle := time.Since(lastWrite); idle < wait {
				linger.Reset(wait - idle)
				continue
			}
			if c.stopWriting() {
				return
			}
			linger.Reset(wait)
		}
	}
}

// take first gives back the room of the written bytes of data frames
// written since the last take, then moves the pending control frames, then
// queued frames, into batch, up to maxBatch; taken is the bytes of the
// data frames it took (they still count against the queue until written),
// data reports that it took one, and closing that a close is requested
// instead (a close outranks whatever is still queued, which is discarded
// unless the close drains it).
func (c *Client) take(batch [][]byte, written int64) (_ [][]byte, taken int64, data, closing bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queued -= written
	if c.closing.Load() {
		if !c.close.drain {
			clear(c.queue)
			c.queue, c.queued = nil, 0
		}
		return batch, 0, false, true
	}
	batch = append(batch, c.control...)
	clear(c.control)
	c.control = c.control[:0]
	n := min(len(c.queue), maxBatch-len(batch))
	for _, f := range c.queue[:n] {
		taken += int64(len(f))
	}
	batch = append(batch, c.queue[:n]...)
	rest := copy(c.queue, c.queue[n:]) // keep the backing array for the next frames
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return batch, taken, n > 0, false
}

// stopWriting ends the writer if nothing is queued, giving back the
// queues' memory; it reports whether the writer must end.
func (c *Client) stopWriting() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) > 0 || len(c.control) > 0 || c.closing.Load() {
		return false
	}
	c.writing = false
	c.queue, c.control = nil, nil
	return true
}

// fail ends a connection whose write failed: the close is silent (the
// connection is gone) and the reader is interrupted.
func (c *Client) fail() {
	c.closeWith(closeRequest{code: ws.StatusAbnormalClosure, reason: "connection lost", silent: true})
	c.nc.SetDeadline(time.Now())
	close(c.writerDone)
}

// writeClose writes what must precede the close frame, then the frame itself.
func (c *Client) writeClose() {
	if c.close.silent {
		return
	}
	if c.close.drain {
		c.drainQueue()
	}
	if err := c.write([][]byte{c.close.frame}); err != nil {
		c.nc.SetDeadline(time.Now()) // the handshake cannot complete
		return
	}
	if !c.close.echo {
		c.closeFrameSent() // the peer has the close timeout to answer
	}
}

// drainQueue writes every frame still queued.
func (c *Client) drainQueue() {
	for {
		c.mu.Lock()
		n := min(len(c.queue), maxBatch)
		batch := append([][]byte(nil), c.queue[:n]...)
		c.queue = c.queue[n:]
		c.mu.Unlock()
		if len(batch) == 0 || c.write(batch) != nil {
			return
		}
	}
}

// write writes frames in one system call where the platform allows.
func (c *Client) write(frames [][]byte) error {
	bufs := net.Buffers(frames)
	return c.writeBuffers(&bufs)
}

// writeBuffers writes bufs (consuming it) in one system call where the
// platform allows.
func (c *Client) writeBuffers(bufs *net.Buffers) error {
	// The deadline moves only when half of it is used up: a write may block
	// between half the write timeout and all of it, and most writes move
	// no timer.
	if now := time.Now(); c.writeDeadline.Sub(now) < c.opts.WriteTimeout/2 {
		c.writeDeadline = now.Add(c.opts.WriteTimeout)
		c.nc.SetWriteDeadline(c.writeDeadline)
	}
	frames := len(*bufs)
	n, err := bufs.WriteTo(c.nc)
	c.metrics.MessagesOut.Add(float64(frames))
	c.metrics.BytesOut.Add(float64(n))
	return err
}
