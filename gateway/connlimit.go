package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// Connections admitted past a limit, to be answered once (a 503 for an
// upgrade or a static file, or a gateway path such as /healthz or /metrics)
// and then closed: at most overflowTotal at once, overflowPerIP from one
// address. Past those a connection is closed as soon as it is accepted.
const (
	overflowTotal = 16
	overflowPerIP = 4
)

// connTable counts every accepted connection (plain HTTP, keep-alive,
// upgraded) against limits.max_connections and limits.max_per_ip, and
// knows which are idle keep-alive connections, so that one of them can be
// closed to make room for a new connection.
type connTable struct {
	mu    sync.Mutex
	total int                       // admitted connections
	over  int                       // connections admitted past a limit
	perIP map[string]*ipConns       // by remote address
	idle  map[*trackedConn]*ipConns // idle keep-alive HTTP connections
}

// ipConns are the connections of one remote address.
type ipConns struct {
	n, over int
	idle    map[*trackedConn]struct{}
}

// trackedConn is an accepted connection counted in a connTable until it
// is closed.
type trackedConn struct {
	net.Conn
	table    *connTable
	ip       string
	over     bool // admitted past a limit: answered once, then closed
	released bool // guarded by table.mu
}

func newConnTable() *connTable {
	return &connTable{perIP: make(map[string]*ipConns), idle: make(map[*trackedConn]*ipConns)}
}

// admit counts nc against the limits (0: none). When a limit is reached
// an idle keep-alive connection (of the same address, for the per-address
// limit) is closed to make room; when none is idle, nc is admitted as an
// overflow connection while there is room for those. ok is false when nc
// must be closed at once.
func (t *connTable) admit(nc net.Conn, maxTotal, maxPerIP int) (tc *trackedConn, ok bool) {
	ip := remoteIP(nc.RemoteAddr())
	t.mu.Lock()
	e := t.perIP[ip]
	if e == nil {
		e = &ipConns{idle: make(map[*trackedConn]struct{})}
		t.perIP[ip] = e
	}
	var victims []*trackedConn
	for range 2 { // at most one eviction for each limit
		var v *trackedConn
		switch {
		case maxPerIP > 0 && e.n >= maxPerIP:
			v = anyKey(e.idle)
		case maxTotal > 0 && t.total >= maxTotal:
			v = anyKey(t.idle)
		}
		if v == nil {
			break
		}
		t.releaseLocked(v)
		victims = append(victims, v)
	}
	t.perIP[ip] = e // evicting the address's last connection forgot it
	tc = &trackedConn{Conn: nc, table: t, ip: ip}
	switch {
	case (maxPerIP <= 0 || e.n < maxPerIP) && (maxTotal <= 0 || t.total < maxTotal):
		e.n++
		t.total++
		ok = true
	case t.over < overflowTotal && e.over < overflowPerIP:
		tc.over = true
		e.over++
		t.over++
		ok = true
	default:
		t.forgetIfEmpty(ip, e)
	}
	t.mu.Unlock()
	for _, v := range victims {
		v.Conn.Close() // its server goroutine sees the end and closes it again: a no-op
	}
	return tc, ok
}

// anyKey returns some key of m, or nil.
func anyKey[V any](m map[*trackedConn]V) *trackedConn {
	for k := range m {
		return k
	}
	return nil
}

// releaseLocked stops counting c; t.mu is held.
func (t *connTable) releaseLocked(c *trackedConn) {
	if c.released {
		return
	}
	c.released = true
	e := t.perIP[c.ip]
	delete(t.idle, c)
	delete(e.idle, c)
	if c.over {
		e.over--
		t.over--
	} else {
		e.n--
		t.total--
	}
	t.forgetIfEmpty(c.ip, e)
}

func (t *connTable) forgetIfEmpty(ip string, e *ipConns) {
	if e.n == 0 && e.over == 0 {
		delete(t.perIP, ip)
	}
}

// setIdle records whether c waits for a new request on a keep-alive
// connection (it may then be closed to make room).
func (t *connTable) setIdle(c *trackedConn, idle bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.released || c.over {
		return
	}
	e := t.perIP[c.ip]
	if idle {
		t.idle[c], e.idle[c] = e, struct{}{}
	} else {
		delete(t.idle, c)
		delete(e.idle, c)
	}
}

// Close closes the connection and stops counting it.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.table.mu.Lock()
	c.table.releaseLocked(c)
	c.table.mu.Unlock()
	return err
}

// SyscallConn gives the poller the connection's descriptor.
func (c *trackedConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// CloseWrite shuts the writing side, when the connection has one.
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom lets static files go out with sendfile.
func (c *trackedConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

// remoteIP returns the IP of a remote address, or the whole address.
func remoteIP(a net.Addr) string {
	s := a.String()
	if host, _, err := net.SplitHostPort(s); err == nil {
		return host
	}
	return s
}

// limitListener admits each accepted connection in the server's table;
// one refused is closed at once.
type limitListener struct {
	net.Listener
	s *Server
}

// Accept returns the next admitted connection.
func (l limitListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		limits := l.s.routes.Load().cfg.Limits
		if tc, ok := l.s.conns.admit(nc, limits.MaxConnections, limits.MaxPerIP); ok {
			return tc, nil
		}
		nc.Close()
	}
}

// tracked returns the trackedConn under c (which may be a TLS connection).
func tracked(c net.Conn) *trackedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	t, _ := c.(*trackedConn)
	return t
}

// connState follows keep-alive connections going idle and busy.
func (s *Server) connState(c net.Conn, state http.ConnState) {
	if tc := tracked(c); tc != nil {
		tc.table.setIdle(tc, state == http.StateIdle)
	}
}

// overKey marks the context of a request that came on an overflow connection.
type overKey struct{}

// connContext marks the requests of an overflow connection.
func (s *Server) connContext(ctx context.Context, c net.Conn) context.Context {
	if tc := tracked(c); tc != nil && tc.over {
		return context.WithValue(ctx, overKey{}, true)
	}
	return ctx
}

// overLimit reports whether r came on a connection admitted past a limit.
func overLimit(r *http.Request) bool { return r.Context().Value(overKey{}) != nil }
