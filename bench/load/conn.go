package load

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// Conn is one client connection of the load generator, with its own
// buffers so that a message costs no allocation.
type Conn struct {
	nc  net.Conn
	br  *bufio.Reader
	wmu sync.Mutex
	wb  []byte // the frame being written
	rb  []byte // the payload last read
	hb  [ws.MaxHeaderSize]byte

	// OnPing, if set before reading starts, is called for each ping the
	// server sends (after it is answered).
	OnPing func()
}

// ErrClosedByServer is returned by Read when the server sent a close frame.
var ErrClosedByServer = errors.New("server closed the connection")

// WriteText writes payload as one masked text frame.
func (c *Conn) WriteText(payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n := len(payload)
	b := c.wb[:0]
	switch {
	case n <= 125:
		b = append(b, 0x81, 0x80|byte(n))
	case n <= 0xFFFF:
		b = binary.BigEndian.AppendUint16(append(b, 0x81, 0x80|126), uint16(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x81, 0x80|127), uint64(n))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	b = append(b, mask[:]...)
	start := len(b)
	b = append(b, payload...)
	ws.Cipher(b[start:], mask, 0)
	c.wb = b
	_, err := c.nc.Write(b)
	return err
}

// Read returns the payload of the next data frame (valid until the next
// Read), answering pings on the way. The load tool's servers do not
// fragment, so a frame is a message.
func (c *Conn) Read() ([]byte, error) {
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hb[:])
		if err != nil {
			return nil, err
		}
		if h.Length > 64<<20 {
			return nil, fmt.Errorf("frame of %d bytes", h.Length)
		}
		if int64(cap(c.rb)) < h.Length {
			c.rb = make([]byte, h.Length)
		}
		p := c.rb[:h.Length]
		if _, err := io.ReadFull(c.br, p); err != nil {
			return nil, err
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			c.writeControl(ws.OpPong, p)
			if c.OnPing != nil {
				c.OnPing()
			}
		case ws.OpClose:
			return nil, ErrClosedByServer
		case ws.OpText, ws.OpBinary, ws.OpContinuation:
			return p, nil
		}
	}
}

func (c *Conn) writeControl(op ws.OpCode, p []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	f := ws.NewFrame(op, true, append([]byte(nil), p...))
	ws.WriteFrame(c.nc, ws.MaskFrameInPlace(f))
}

// SetReadDeadline sets the deadline of the connection's reads.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.nc.SetReadDeadline(t) }

// Close closes the connection without a close handshake.
func (c *Conn) Close() error { return c.nc.Close() }

// Dialer opens load connections, spreading them over several loopback
// source addresses so that more connections than one address has ephemeral
// ports (about 28,000) can be made.
type Dialer struct {
	// Sources are the local addresses to dial from, in turn; empty: the
	// system's choice.
	Sources []net.IP
	// Timeout bounds one connection's dial and handshake.
	Timeout time.Duration
	n       atomic.Uint64
}

// Dial connects to url and completes the WebSocket handshake.
func (d *Dialer) Dial(ctx context.Context, url string) (*Conn, error) {
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	nd := &net.Dialer{Timeout: timeout}
	if len(d.Sources) > 0 {
		src := d.Sources[d.n.Add(1)%uint64(len(d.Sources))]
		nd.LocalAddr = &net.TCPAddr{IP: src}
	}
	wd := ws.Dialer{Timeout: timeout, NetDial: nd.DialContext}
	nc, br, _, err := wd.Dial(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	if br == nil {
		br = bufio.NewReaderSize(nc, 4096)
	}
	return &Conn{nc: nc, br: br}, nil
}

// LoopbackSources returns n addresses 127.0.0.1, 127.0.0.2, …
func LoopbackSources(n int) []net.IP {
	out := make([]net.IP, 0, n)
	for i := range n {
		out = append(out, net.IPv4(127, 0, byte(i>>8), byte(i%256+1)))
	}
	return out
}

// DialAll opens n connections, parallel at a time, to the URL that urlOf
// gives for each index, and calls setup (if not nil) on each. progress, if
// not nil, is called after each connection.
func DialAll(ctx context.Context, d *Dialer, n, parallel int, urlOf func(i int) string, setup func(i int, c *Conn) error, progress func(done int)) ([]*Conn, error) {
	conns := make([]*Conn, n)
	var (
		next, done atomic.Int64
		firstErr   error
		errOnce    sync.Once
		wg         sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range max(parallel, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				c, err := d.Dial(ctx, urlOf(i))
				if err == nil && setup != nil {
					if err = setup(i, c); err != nil {
						c.Close()
					}
				}
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i, err); cancel() })
					return
				}
				conns[i] = c
				if progress != nil {
					progress(int(done.Add(1)))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		CloseAll(conns)
		return nil, firstErr
	}
	return conns, ctx.Err()
}

// CloseAll closes every connection of conns that is not nil.
func CloseAll(conns []*Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}
