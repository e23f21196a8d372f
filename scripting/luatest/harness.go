package luatest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/wsproto"
	"github.com/moongate/moongate/scripting"
)

// SettleTimeout bounds how long the harness waits, in real time, for the
// service to become quiescent (a handler stuck in a call, say).
var SettleTimeout = 10 * time.Second

// Harness runs one endpoint's service in-process for one test: the real
// runtime (scripting.New) with a virtual clock, and simulated clients
// served by real gateway clients over in-memory connections.
type Harness struct {
	ep    config.Endpoint
	svc   *scripting.Service
	clock *VirtualClock
	ctx   context.Context
	stop  context.CancelFunc

	mu    sync.Mutex
	conns []*Conn
	runs  sync.WaitGroup
	// activity counts what may give the service more to do: a message or
	// a close handed to it, a close frame taken in.
	activity atomic.Uint64
	remote   int
}

// NewHarness starts ep's service with clock, logging to log, with opts
// (scripting.WithDatabases, say) added.
func NewHarness(ep config.Endpoint, clock *VirtualClock, log *slog.Logger, opts ...scripting.Option) (*Harness, error) {
	opts = append([]scripting.Option{scripting.WithClock(clock)}, opts...)
	svc, err := scripting.New(ep, log, nil, opts...)
	if err != nil {
		return nil, err
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Harness{ep: ep, svc: svc, clock: clock, ctx: ctx, stop: stop}, nil
}

// Service returns the service under test.
func (h *Harness) Service() *scripting.Service { return h.svc }

// Clock returns the harness's virtual clock.
func (h *Harness) Clock() *VirtualClock { return h.clock }

// ConnectOptions describe a simulated client's upgrade request.
type ConnectOptions struct {
	Path     string         // default: the endpoint's path
	Query    url.Values     // the query string
	Header   http.Header    // request headers
	Claims   map[string]any // a verified sign-in token's claims (nil: a guest)
	Remote   string         // the client's address (default 127.0.0.1:<n>)
	Protocol string         // the negotiated subprotocol
}

// Connect connects a simulated client. A refusal, by the endpoint's
// sign-in policy or the script's connect handler, comes back as a
// *gateway.Refusal.
func (h *Harness) Connect(o ConnectOptions) (*Conn, error) {
	if o.Claims == nil && h.ep.Auth != nil && h.ep.Auth.Required {
		// What the gateway answers before the service is asked.
		return nil, &gateway.Refusal{Status: http.StatusUnauthorized,
			Reason: "sign-in required: give a token as ?token= or Authorization: Bearer"}
	}
	h.mu.Lock()
	h.remote++
	n := h.remote
	h.mu.Unlock()
	req := &client.Request{Path: o.Path, Query: o.Query, Header: o.Header, Claims: o.Claims,
		RemoteAddr: o.Remote, Host: "moongate.test", Protocol: o.Protocol}
	if req.Path == "" {
		req.Path = h.ep.Path
	}
	if req.Query == nil {
		req.Query = url.Values{}
	}
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.RemoteAddr == "" {
		req.RemoteAddr = fmt.Sprintf("127.0.0.1:%d", 40000+n)
	}
	onFull := client.CloseSlow
	if h.ep.OnFull == config.OnFullDrop {
		onFull = client.DropNew
	}
	srv := client.New(req, client.Options{
		SendQueue: h.ep.SendQueue, SendQueueBytes: h.ep.SendQueueBytes, OnFull: onFull,
		MaxMessageBytes: h.ep.MaxMessageBytes, PingInterval: h.ep.PingInterval,
		IdleTimeout: h.ep.IdleTimeout, MessageTimeout: h.ep.MessageTimeout,
	}, nil)
	if err := h.svc.Connect(h.ctx, srv); err != nil {
		var r *gateway.Refusal
		if !errors.As(err, &r) {
			r = &gateway.Refusal{Status: http.StatusInternalServerError, Reason: err.Error()}
		}
		return nil, r
	}
	srvEnd, testEnd := net.Pipe()
	c := &Conn{h: h, srv: srv, nc: testEnd, runDone: make(chan struct{}), readDone: make(chan struct{})}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	h.runs.Add(2)
	go func() {
		defer h.runs.Done()
		defer close(c.runDone)
		nc := countingConn{Conn: srvEnd, n: &c.written}
		srv.Run(h.ctx, nc, bufio.NewReader(nc), client.Handlers{
			Message: func(m wsproto.Message) {
				h.svc.Message(h.ctx, srv, m)
				c.delivered.Add(1)
				h.activity.Add(1)
			},
			Flush: func() { h.svc.Flush(h.ctx, srv) },
			Closed: func(how client.Closed) {
				h.svc.Closed(srv, how)
				c.gone.Store(true)
				h.activity.Add(1)
				srvEnd.Close()
			},
		}, nil)
	}()
	go func() {
		defer h.runs.Done()
		c.readLoop()
	}()
	return c, nil
}

// Settle waits until nothing is under way: every message and close the
// clients sent handed to the service, the service idle (scripting's
// Service.Idle), the timers due at the virtual time fired and handled,
// and everything the service sent taken in by the clients.
func (h *Harness) Settle() error {
	ctx, cancel := context.WithTimeout(h.ctx, SettleTimeout)
	defer cancel()
	for {
		seen := h.activity.Load()
		if err := h.clock.WaitCallbacks(ctx); err != nil {
			return h.stuck("a timer's callback", err)
		}
		if err := h.wait(ctx, func(c *Conn) bool { return c.inputSettled() }); err != nil {
			return h.stuck("what the clients sent to reach the service", err)
		}
		if err := h.svc.Idle(ctx); err != nil {
			return h.stuck("the service to be idle", err)
		}
		if h.clock.FireDue() {
			continue
		}
		if err := h.wait(ctx, func(c *Conn) bool { return c.outputSettled() }); err != nil {
			return h.stuck("what the service sent to reach the clients", err)
		}
		if h.activity.Load() == seen && h.settled() {
			return nil
		}
	}
}

// settled reports, without waiting, whether every client is settled both ways.
func (h *Harness) settled() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		if !c.inputSettled() || !c.outputSettled() {
			return false
		}
	}
	return true
}

// stuck describes a wait that did not end.
func (h *Harness) stuck(what string, err error) error {
	return fmt.Errorf("waited %s for %s: %w", SettleTimeout, what, err)
}

// wait polls until ok holds for every client, or ctx is done.
func (h *Harness) wait(ctx context.Context, ok func(*Conn) bool) error {
	pause := 20 * time.Microsecond
	for {
		h.mu.Lock()
		conns := h.conns
		h.mu.Unlock()
		all := true
		for _, c := range conns {
			if !ok(c) {
				all = false
				break
			}
		}
		if all {
			return nil
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
		pause = min(2*pause, 2*time.Millisecond)
	}
}

// Advance moves the virtual clock d forward, firing the timers that fall
// due on the way in order, each at its own time and handled (the service
// settled) before the next.
func (h *Harness) Advance(d time.Duration) error {
	if err := h.Settle(); err != nil {
		return err
	}
	target := h.clock.Now().Add(d)
	for h.clock.Step(target) {
		if err := h.Settle(); err != nil {
			return err
		}
	}
	return h.Settle()
}

// Close ends every client without a handshake, then stops the service.
func (h *Harness) Close() {
	h.mu.Lock()
	conns := h.conns
	h.mu.Unlock()
	for _, c := range conns {
		c.nc.Close()
	}
	h.stop()
	h.runs.Wait()
	h.svc.Close()
}
