// Package client is one WebSocket client of the gateway: who it is (id,
// request, attributes), its bounded send queue, and the goroutines that read
// its messages and write its frames until the connection closes.
package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/gateway/wsproto"
)

// OnFull says what Send does when a client's send queue is full.
type OnFull int

const (
	// CloseSlow closes the client with 1008 (policy violation): a client
	// that does not keep up is cut off and everyone else is unaffected.
	CloseSlow OnFull = iota
	// DropNew drops the message being sent and counts it; the client stays.
	DropNew
)

// Options are a client's limits, taken from its endpoint's config.
type Options struct {
	SendQueue       int           // frames queued for writing, at most
	SendQueueBytes  int64         // bytes of frames queued or being written, at most (one frame always fits an empty queue)
	OnFull          OnFull        // what a full queue does
	MaxMessageBytes int64         // largest message read from the client
	PingInterval    time.Duration // 0: no pings
	IdleTimeout     time.Duration // close when nothing arrives for this long
	MessageTimeout  time.Duration // close (1008) when a message is not complete this long after it started
	WriteTimeout    time.Duration // longest one write to the socket may block
	CloseTimeout    time.Duration // how long to wait for the peer's close reply
}

// withDefaults fills the zero fields of o.
func (o Options) withDefaults() Options {
	if o.SendQueue <= 0 {
		o.SendQueue = 256
	}
	if o.SendQueueBytes <= 0 {
		o.SendQueueBytes = 1 << 20
	}
	if o.MaxMessageBytes <= 0 {
		o.MaxMessageBytes = 64 << 10
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.MessageTimeout <= 0 {
		o.MessageTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.CloseTimeout <= 0 {
		o.CloseTimeout = 2 * time.Second
	}
	return o
}

// Request is what the client's upgrade request said. It is kept for the
// connection's life, so NewRequest keeps only what a script can read, and
// a bounded amount of it.
type Request struct {
	Path string
	// Query holds the first value of each query parameter, at most
	// KeptBytes of names and values (see NewRequest).
	Query url.Values
	// Header holds the first value of each header, at most KeptBytes of
	// names and values (see NewRequest).
	Header     http.Header
	RemoteAddr string
	Host       string
	// Claims are the claims of the client's verified sign-in token; nil
	// for a guest.
	Claims map[string]any
	// Protocol is the subprotocol negotiated with the client, or "".
	Protocol string
}

// KeptBytes bounds the header names and values, and separately the query
// parameter names and values, a Request keeps for the connection's life.
const KeptBytes = 8 << 10

// NewRequest returns the Request a client keeps of r: the first value of
// each header and of each query parameter, copied, in name order while
// they fit in KeptBytes (one that does not fit is left out, and the next
// ones are tried). claims and protocol are the verified sign-in claims and
// the negotiated subprotocol.
func NewRequest(r *http.Request, claims map[string]any, protocol string) *Request {
	return &Request{
		Path:       strings.Clone(r.URL.Path),
		Query:      firstValues(r.URL.Query(), KeptBytes),
		Header:     firstValues(r.Header, KeptBytes),
		RemoteAddr: strings.Clone(r.RemoteAddr),
		Host:       strings.Clone(r.Host),
		Claims:     claims,
		Protocol:   protocol,
	}
}

// firstValues copies the first value of each name in m, in name order,
// while names and values fit in budget bytes.
func firstValues(m map[string][]string, budget int) map[string][]string {
	names := make([]string, 0, len(m))
	for k, v := range m {
		if len(v) > 0 {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	out := make(map[string][]string, len(names))
	for _, k := range names {
		v := m[k][0]
		if n := len(k) + len(v); n <= budget {
			budget -= n
			out[strings.Clone(k)] = []string{strings.Clone(v)}
		}
	}
	return out
}

// Errors returned by Send.
var (
	// ErrClosed: the client is closing or closed; the frame was not queued.
	ErrClosed = errors.New("client closed")
	// ErrQueueFull: the send queue was full and the frame was dropped.
	ErrQueueFull = errors.New("send queue full: message dropped")
	// ErrSlowClient: the send queue was full and the client is being closed with 1008.
	ErrSlowClient = errors.New("send queue full: client closed")
)

// Client is one connected (or connecting) WebSocket client. All its methods
// are safe for concurrent use.
type Client struct {
	id      string
	req     *Request
	opts    Options
	metrics *metrics.Endpoint

	attrMu sync.Mutex
	attrs  map[string]any

	// Slot holds the service's own per-client value. The service sets it
	// while handling Connect, before the client is served; it is read-only
	// afterwards.
	Slot any

	inflate    bool         // permessage-deflate negotiated; set before Run
	takeover   bool         // ...with client context takeover
	maxMessage atomic.Int64 // Options.MaxMessageBytes, changeable while connected
	onFull     atomic.Int32 // Options.OnFull, changeable while connected

	conn // the connection, once Run starts

	// The send side: frames wait in queue (data, bounded by SendQueue and
	// SendQueueBytes) and control (pongs and pings) until a writer
	// goroutine, started when there is something to write, writes them;
	// see writer.go.
	mu    sync.Mutex
	queue [][]byte
	// queued is the bytes of the data frames in queue and in the writer's
	// hands: a frame counts until it has been written.
	queued     int64
	control    [][]byte
	running    bool          // Run has started: a writer may start
	writing    bool          // a writer goroutine runs (for good, once closing)
	notify     chan struct{} // wakes a lingering writer
	writerDone chan struct{} // closed once the writer has finished for good
	// writeDeadline is the write deadline last set; only the writer of the
	// moment touches it.
	writeDeadline time.Time

	closing atomic.Bool
	close   closeState

	// handMu is held while a message is handed to Handlers.Message; held,
	// which it guards, stops the handing on (see HoldMessages).
	handMu sync.Mutex
	held   bool
}

// closeState is the close requested for a client: set once, by whoever asks first.
type closeState struct {
	once sync.Once
	closeRequest
	frame []byte // nil when nothing is to be written
}

// closeRequest says how a client is to be closed.
type closeRequest struct {
	code   ws.StatusCode
	reason string
	drain  bool // write what is queued before the close frame
	echo   bool // answering the peer's close: the handshake is complete once written
	silent bool // the connection is gone: write nothing
}

// New returns a client for the upgrade request req, not yet connected.
func New(req *Request, opts Options, m *metrics.Endpoint) *Client {
	opts = opts.withDefaults()
	if m == nil {
		m = metrics.Discard()
	}
	c := &Client{
		id:         NewID(),
		req:        req,
		opts:       opts,
		metrics:    m,
		notify:     make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	c.SetLimits(opts.MaxMessageBytes, opts.OnFull)
	return c
}

// AcceptCompressed makes the client accept messages compressed with
// permessage-deflate, as negotiated in its handshake; with takeover, each
// message may refer back to the ones before. Call it before Run.
func (c *Client) AcceptCompressed(takeover bool) { c.inflate, c.takeover = true, takeover }

// SetLimits changes the largest message the client may send (from its next
// message on) and what a full send queue does.
func (c *Client) SetLimits(maxMessageBytes int64, onFull OnFull) {
	if maxMessageBytes > 0 {
		c.maxMessage.Store(maxMessageBytes)
	}
	c.onFull.Store(int32(onFull))
}

// ID returns the client's id, unique in this process.
func (c *Client) ID() string { return c.id }

// Request returns what the client's upgrade request said.
func (c *Client) Request() *Request { return c.req }

// Attr returns the attribute stored under key.
func (c *Client) Attr(key string) (any, bool) {
	c.attrMu.Lock()
	defer c.attrMu.Unlock()
	v, ok := c.attrs[key]
	return v, ok
}

// SetAttr stores v under key; a nil v removes the attribute.
func (c *Client) SetAttr(key string, v any) {
	c.attrMu.Lock()
	defer c.attrMu.Unlock()
	if v == nil {
		delete(c.attrs, key)
		return
	}
	if c.attrs == nil {
		c.attrs = make(map[string]any)
	}
	c.attrs[key] = v
}

// Send queues an encoded frame (see wsproto.Frame) for writing. It never
// blocks: when the queue is full, in frames (SendQueue) or in bytes
// (SendQueueBytes, counting the frames being written), it applies the
// client's OnFull policy. The frame must not be modified afterwards; the
// same frame may be queued to many clients, and counts in full against
// each one's queue.
func (c *Client) Send(frame []byte) error {
	c.mu.Lock()
	if c.closing.Load() {
		c.mu.Unlock()
		return ErrClosed
	}
	if c.roomFor(frame) {
		c.queue = append(c.queue, frame)
		c.queued += int64(len(frame))
		spawn := c.claimWriter()
		c.mu.Unlock()
		if spawn {
			go c.writeLoop()
		}
		return nil
	}
	c.mu.Unlock()
	if OnFull(c.onFull.Load()) == DropNew {
		c.metrics.QueueDrops.Inc()
		return ErrQueueFull
	}
	c.metrics.SlowCloses.Inc()
	c.closeWith(closeRequest{code: ws.StatusPolicyViolation, reason: "send queue full"})
	return ErrSlowClient
}

// roomFor, called with c.mu held, reports whether frame fits in the send
// queue. A frame larger than SendQueueBytes fits only an empty queue, so
// that a client may always be sent one message however large.
func (c *Client) roomFor(frame []byte) bool {
	if len(c.queue) >= c.opts.SendQueue {
		return false
	}
	return c.queued == 0 || c.queued+int64(len(frame)) <= c.opts.SendQueueBytes
}

// SendText queues a text message.
func (c *Client) SendText(s string) error { return c.Send(wsproto.FrameString(ws.OpText, s)) }

// Close starts the close handshake with code and reason. What is already
// queued is discarded; use Shutdown to deliver it first.
func (c *Client) Close(code ws.StatusCode, reason string) {
	c.closeWith(closeRequest{code: code, reason: reason})
}

// Shutdown closes the client with 1001 (going away) after writing what is
// already queued. To answer the messages already read first, call
// HoldMessages and let the service finish them before (see
// gateway.Server.Shutdown).
func (c *Client) Shutdown() { c.GoAway("server shutting down") }

// GoAway closes the client with 1001 (going away) and reason after
// writing what is already queued.
func (c *Client) GoAway(reason string) {
	c.closeWith(closeRequest{code: ws.StatusGoingAway, reason: reason, drain: true})
}

// HoldMessages stops handing the client's messages on to Handlers.Message:
// those read from now on are discarded (the client is about to be closed).
// It returns true once no message is being handed on, so that every
// message the service will ever get from the client is with it; false when
// ctx ends first (the service is still taking one: the hold starts once it
// has, on a goroutine that ends then).
func (c *Client) HoldMessages(ctx context.Context) bool {
	if c.handMu.TryLock() {
		c.held = true
		c.handMu.Unlock()
		return true
	}
	held := make(chan struct{})
	go func() {
		c.handMu.Lock()
		c.held = true
		c.handMu.Unlock()
		close(held)
	}()
	select {
	case <-held:
		return true
	case <-ctx.Done():
		return false
	}
}

// handOn hands m to Handlers.Message unless messages are held.
func (c *Client) handOn(m wsproto.Message) {
	c.handMu.Lock()
	defer c.handMu.Unlock()
	if !c.held {
		c.h.Message(m)
	}
}

// Closing reports whether a close has been requested.
func (c *Client) Closing() bool { return c.closing.Load() }

// closeWith records the first close requested, then wakes the writer (to
// write the close frame) and the reader (to read the peer's answer, or
// to end).
func (c *Client) closeWith(r closeRequest) {
	c.close.once.Do(func() {
		c.close.closeRequest = r
		switch {
		case r.silent:
		case r.code == ws.StatusNoStatusRcvd:
			c.close.frame = wsproto.CloseFrame(0, "")
		default:
			c.close.frame = wsproto.CloseFrame(r.code, r.reason)
		}
		c.mu.Lock()
		c.closing.Store(true)
		spawn := c.claimWriter()
		c.mu.Unlock()
		if spawn {
			go c.writeLoop()
		}
		c.unpark()
	})
}

// NewID returns a new client id: 128 random bits, base64url-encoded (22
// characters), so that knowing one id tells nothing about another.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics if the system cannot supply randomness)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Attrs returns a copy of every attribute.
func (c *Client) Attrs() map[string]any {
	c.attrMu.Lock()
	defer c.attrMu.Unlock()
	out := make(map[string]any, len(c.attrs))
	for k, v := range c.attrs {
		out[k] = v
	}
	return out
}

// Queued returns how many frames wait in the send queue.
func (c *Client) Queued() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// QueuedBytes returns the bytes of the frames waiting in the send queue or
// being written.
func (c *Client) QueuedBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}
