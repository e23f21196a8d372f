// Package gateway is Moongate's core: it serves the endpoints of a config,
// upgrades requests to WebSocket, runs each connection, and hands the
// clients' events to the endpoint's Service. It knows nothing about Lua.
package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
	"github.com/moongate/moongate/gateway/auth"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/gateway/netpoll"
	"github.com/moongate/moongate/gateway/wsproto"
)

// Server serves one config's endpoints and static folders. Apply switches
// it to another config without a restart.
type Server struct {
	log     *slog.Logger
	metrics *metrics.Metrics
	http    *http.Server
	mux     *http.ServeMux         // the gateway's own paths: /healthz, /metrics, /admin/...
	health  HealthCheck            // asked by /healthz; nil: always ok
	routes  atomic.Pointer[routes] // the config's endpoints and static folders
	ctx     context.Context        // cancelled when shutdown starts
	cancel  context.CancelFunc

	listenAt atomic.Pointer[listenAddr] // set by Serve

	tls    *tls.Config     // nil: plain TCP
	poller *netpoll.Poller // where idle connections wait; nil: each keeps a goroutine

	conns *connTable // every accepted connection, against the limits

	adminToken []byte // SHA-256 of the admin token; nil: admin is loopback only

	mu       sync.Mutex
	closing  bool
	live     map[*client.Client]liveConn
	handlers sync.WaitGroup
}

// liveConn is an upgraded connection and the endpoint that serves it.
type liveConn struct {
	nc net.Conn
	e  *endpoint
}

// endpoint is one configured WebSocket path and the service behind it.
type endpoint struct {
	removed atomic.Bool // set when a new config drops the endpoint
	server  *Server
	cfg     config.Endpoint
	service Service
	metrics *metrics.Endpoint
	opts    client.Options
	auth    *auth.Verifier // nil: no sign-in
}

// New returns a server for cfg; services maps each endpoint path to the
// service that implements it.
func New(cfg *config.Config, services map[string]Service, log *slog.Logger, m *metrics.Metrics) (*Server, error) {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{log: log, metrics: m, ctx: ctx, cancel: cancel, live: make(map[*client.Client]liveConn), conns: newConnTable()}
	rt, err := s.newRoutes(cfg, services, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if cfg.TLS != nil {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("tls: %w", err)
		}
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS12}
	}
	if s.poller, err = netpoll.New(ctx); err != nil {
		log.Warn("idle connections will each keep a goroutine", "err", err)
	}
	s.routes.Store(rt)
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/healthz", s.serveHealth)
	s.mux.Handle("/metrics", s.serveMetrics(m.Handler()))
	s.http = s.newHTTPServer(cfg.Limits)
	return s, nil
}

// newHTTPServer returns the HTTP server for the limits: a request's
// headers must arrive within the handshake timeout, and so must the whole
// of a plain HTTP request (the gateway takes no uploads; an upgraded
// connection sets its own deadlines); a keep-alive connection idle for
// http_idle_timeout is closed; headers are bounded by max_header_bytes.
// Every connection is counted against the limits (see connTable).
func (s *Server) newHTTPServer(l config.Limits) *http.Server {
	def := func(v, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return v
	}
	handshake := def(l.HandshakeTimeout, config.DefaultHandshakeTimeout)
	maxHeader := l.MaxHeaderBytes
	if maxHeader <= 0 {
		maxHeader = config.DefaultMaxHeaderBytes
	}
	return &http.Server{
		Handler:           http.HandlerFunc(s.route),
		ReadHeaderTimeout: handshake,
		ReadTimeout:       handshake,
		IdleTimeout:       def(l.HTTPIdleTimeout, config.DefaultHTTPIdleTimeout),
		MaxHeaderBytes:    int(maxHeader),
		ConnState:         s.connState,
		ConnContext:       s.connContext,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// newEndpoint makes the handler of one endpoint.
func (s *Server) newEndpoint(ec config.Endpoint, svc Service) (*endpoint, error) {
	onFull := client.CloseSlow
	if ec.OnFull == config.OnFullDrop {
		onFull = client.DropNew
	}
	var verifier *auth.Verifier
	if ec.Auth != nil {
		v, err := auth.NewVerifier(ec.Auth)
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: %w", ec.Path, err)
		}
		if !v.Enabled() {
			s.log.Warn("sign-in disabled: the token secret is not set; only guests can connect",
				"endpoint", ec.Path, "secret_env", ec.Auth.SecretEnv)
		}
		verifier = v
	}
	return &endpoint{
		auth:    verifier,
		server:  s,
		cfg:     ec,
		service: svc,
		metrics: s.metrics.Endpoint(ec.Path),
		opts: client.Options{
			SendQueue:       ec.SendQueue,
			SendQueueBytes:  ec.SendQueueBytes,
			OnFull:          onFull,
			MaxMessageBytes: ec.MaxMessageBytes,
			PingInterval:    ec.PingInterval,
			IdleTimeout:     ec.IdleTimeout,
			MessageTimeout:  ec.MessageTimeout,
		},
	}, nil
}

// HandleAdmin serves h at path (the admin endpoints, profiles) to local
// clients, or to any client that presents the admin token (see
// SetAdminToken and adminRefusal); others get 403 (401 when a token is
// set), or 421 for a Host that does not name this gateway. Call it before
// Serve.
func (s *Server) HandleAdmin(path string, h http.Handler) {
	s.mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status, reason := s.adminRefusal(r); status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("Www-Authenticate", `Basic realm="moongate admin", charset="UTF-8"`)
			}
			http.Error(w, reason, status)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// MinAdminTokenBytes is the shortest admin token SetAdminToken takes.
const MinAdminTokenBytes = 16

// SetAdminToken lets clients that are not on this machine reach the admin
// paths when they present token, as `Authorization: Bearer <token>` or as
// the password of HTTP Basic authentication (any user name; a browser asks
// for it). An empty token turns that off: admin is loopback only. A token
// shorter than MinAdminTokenBytes is refused. Call it before Serve.
func (s *Server) SetAdminToken(token string) error {
	if token == "" {
		s.adminToken = nil
		return nil
	}
	if len(token) < MinAdminTokenBytes {
		return fmt.Errorf("admin token: %d bytes, at least %d needed", len(token), MinAdminTokenBytes)
	}
	sum := sha256.Sum256([]byte(token))
	s.adminToken = sum[:]
	return nil
}

// Connections returns how many WebSocket connections each endpoint of
// the running config has open now (0 for one without any).
func (s *Server) Connections() map[string]int {
	rt := s.routes.Load()
	out := make(map[string]int, len(rt.endpoints))
	for path := range rt.endpoints {
		out[path] = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, lc := range s.live {
		out[lc.e.cfg.Path]++
	}
	return out
}

// serveMetrics serves /metrics as the config's metrics.expose says.
func (s *Server) serveMetrics(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s.routes.Load().cfg.Metrics.Expose {
		case config.ExposeOff:
			http.NotFound(w, r)
			return
		case config.ExposePublic:
		default: // loopback
			if status, reason := s.local(r); status != 0 {
				http.Error(w, reason, status)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// Handler returns the server's HTTP handler (endpoints, static files,
// /healthz and /metrics).
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Serve accepts connections on ln until Shutdown. It returns
// http.ErrServerClosed after a shutdown.
func (s *Server) Serve(ln net.Listener) error {
	s.listenAt.Store(parseListen(ln.Addr().String()))
	rt := s.routes.Load()
	ws, web := "ws://", "http://"
	ln = limitListener{Listener: ln, s: s}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
		ws, web = "wss://", "https://"
	}
	for _, ec := range rt.cfg.Endpoints {
		s.log.Info("serving endpoint", "endpoint", ec.Path, "script", ec.Script, "states", ec.States,
			"url", ws+ln.Addr().String()+ec.Path)
	}
	for _, st := range rt.cfg.Static {
		s.log.Info("serving files", "prefix", st.Prefix, "dir", st.Dir, "url", web+ln.Addr().String()+st.Prefix)
	}
	s.log.Info("moongate started", "listen", ln.Addr().String(), "config", rt.cfg.File)
	return s.http.Serve(ln)
}

// cutGrace is how long Shutdown waits, once the deadline has cut the
// connections left, for them to end before it returns anyway.
const cutGrace = 100 * time.Millisecond

// Shutdown stops accepting and closes every client with 1001 without
// losing a reply: each client's messages stop being read, the service
// handles those already read and queues its replies, the replies are
// written, then the close frame (see endpoint.goAway). It waits for the
// connections to end and the services to be told. When ctx expires first,
// the connections left are cut and Shutdown returns at most cutGrace
// later, with an error saying how many were cut; whatever they still do
// (a close handler waiting for a stuck script, say) is abandoned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true // track admits no new connection from now on
	live := maps.Clone(s.live)
	s.mu.Unlock()
	stopped := make(chan error, 1)
	go func() { stopped <- s.http.Shutdown(ctx) }()
	for c, lc := range live {
		go lc.e.goAway(ctx, c, "server shutting down")
	}
	err := s.waitConnections(ctx)
	s.cancel() // the poller stops; a message still waiting for room gives up
	if herr := <-stopped; herr != nil {
		err = errors.Join(err, fmt.Errorf("shutdown: http: %w", herr))
	}
	return err
}

// waitConnections waits until every live connection has ended; when ctx
// expires first it cuts them and waits at most cutGrace more. The
// goroutine waiting ends with the last connection.
func (s *Server) waitConnections(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	n := s.cutAll()
	s.cancel()
	select {
	case <-done:
	case <-time.After(cutGrace):
	}
	return fmt.Errorf("shutdown: %d connections cut at the deadline: %w", n, ctx.Err())
}

// cutAll ends every live connection at once, without a close handshake,
// and returns how many there were.
func (s *Server) cutAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, lc := range s.live {
		c.Cut()
		lc.nc.SetDeadline(time.Now())
	}
	return len(s.live)
}

// track registers a live connection, unless shutdown has begun or its
// endpoint has been removed.
func (s *Server) track(c *client.Client, nc net.Conn, e *endpoint) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || e.removed.Load() {
		return false
	}
	s.live[c] = liveConn{nc: nc, e: e}
	s.handlers.Add(1)
	return true
}

func (s *Server) untrack(c *client.Client) {
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
	s.handlers.Done()
}

// ServeHTTP runs one upgrade request: handshake checks, origin, the
// service's Connect, the upgrade, then the connection until it closes or
// goes idle (an idle connection is parked in the server's poller and read
// again, on a new goroutine, when input arrives).
func (e *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := e.server
	if he := checkHandshake(r); he != nil {
		e.refuse(w, "handshake", he.status, he.reason, he.header)
		return
	}
	if !originAllowed(r, e.cfg.Origins) {
		e.refuse(w, "origin", http.StatusForbidden, "origin not allowed", nil)
		return
	}
	if overLimit(r) {
		e.refuse(w, "limit", http.StatusServiceUnavailable, "too many connections, try again later", http.Header{"Retry-After": {"5"}})
		return
	}
	var claims map[string]any
	if e.auth != nil {
		var err error
		if claims, err = e.auth.Verify(r); err != nil {
			e.refuse(w, "auth", http.StatusUnauthorized, err.Error(), http.Header{"Www-Authenticate": {"Bearer"}})
			return
		}
	}
	protocol := chooseProtocol(r, e.cfg.Subprotocols)
	c := client.New(client.NewRequest(r, claims, protocol), e.opts, e.metrics)
	if err := e.service.Connect(r.Context(), c); err != nil {
		e.refuseService(w, c, err)
		return
	}
	upgrader := ws.HTTPUpgrader{Timeout: 10 * time.Second}
	if protocol != "" {
		upgrader.Protocol = func(p string) bool { return p == protocol }
	}
	var deflate *wsflate.Extension
	if e.cfg.Compression {
		// The server's messages go uncompressed (a broadcast frame is
		// shared by every member), so it keeps no window of its own; a
		// client may keep one only where the endpoint allows.
		deflate = &wsflate.Extension{Parameters: wsflate.Parameters{ServerNoContextTakeover: true,
			ClientNoContextTakeover: !e.cfg.CompressionContextTakeover}}
		upgrader.Negotiate = declineInvalid(deflate.Negotiate)
	}
	nc, rw, _, err := upgrader.Upgrade(r, w)
	if deflate != nil {
		if _, ok := deflate.Accepted(); ok {
			c.AcceptCompressed(e.cfg.CompressionContextTakeover)
		}
	}
	if err != nil {
		s.log.Info("upgrade failed", "endpoint", e.cfg.Path, "client", c.ID(), "err", err)
		e.service.Closed(c, client.Closed{Code: ws.StatusAbnormalClosure, Reason: "upgrade failed"})
		return
	}
	if !s.track(c, nc, e) {
		nc.Write(wsproto.CloseFrame(ws.StatusGoingAway, "server shutting down"))
		nc.Close()
		e.service.Closed(c, client.Closed{Code: ws.StatusGoingAway, Reason: "server shutting down"})
		return
	}
	e.metrics.Connections.Inc()
	c.Run(s.ctx, nc, rw.Reader, client.Handlers{
		Message: func(m wsproto.Message) { e.service.Message(s.ctx, c, m) },
		Flush:   e.flusher(c),
		Closed: func(how client.Closed) {
			e.metrics.Connections.Dec()
			e.service.Closed(c, how)
			s.untrack(c)
		},
	}, s.poller)
}

// declineInvalid wraps an extension's negotiation so that an offer with an
// invalid parameter (client_max_window_bits=abc, say) is declined, as RFC
// 7692 section 5 requires, instead of failing the handshake: the client is
// upgraded without that offer (a later valid offer may still be accepted).
func declineInvalid(negotiate func(httphead.Option) (httphead.Option, error)) func(httphead.Option) (httphead.Option, error) {
	return func(opt httphead.Option) (httphead.Option, error) {
		accept, err := negotiate(opt)
		if err != nil {
			return httphead.Option{}, nil
		}
		return accept, nil
	}
}

// goAway closes c with 1001 and reason without losing a reply to a
// message it has sent: it stops handing c's messages to the service (those
// read from now on are discarded), waits until the service has handled
// the ones it has and queued its replies, then c writes what is queued and
// the close frame. ctx bounds the waiting; when it ends first, c is closed
// with what is queued by then.
func (e *endpoint) goAway(ctx context.Context, c *client.Client, reason string) {
	if c.HoldMessages(ctx) {
		if f, ok := e.service.(Flusher); ok {
			f.Flush(ctx, c)
		}
	}
	c.GoAway(reason)
}

// flusher returns how to flush c's pending messages in e's service, with a
// deadline, or nil when the service handles messages synchronously.
func (e *endpoint) flusher(c *client.Client) func() {
	f, ok := e.service.(Flusher)
	if !ok {
		return nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(e.server.ctx, 2*time.Second)
		defer cancel()
		f.Flush(ctx, c)
	}
}

func (e *endpoint) refuse(w http.ResponseWriter, label string, status int, reason string, h http.Header) {
	e.metrics.Refused(label)
	for k, v := range h {
		w.Header()[k] = v
	}
	http.Error(w, reason, status)
}

func (e *endpoint) refuseService(w http.ResponseWriter, c *client.Client, err error) {
	var ref *Refusal
	if errors.As(err, &ref) {
		e.refuse(w, "service", ref.Status, ref.Reason, nil)
		return
	}
	e.server.log.Error("connect failed", "endpoint", e.cfg.Path, "client", c.ID(), "err", err)
	e.refuse(w, "error", http.StatusInternalServerError, "internal error", nil)
}

// HealthCheck reports whether a part the gateway depends on works; when
// not, why.
type HealthCheck func() (ok bool, why string)

// SetHealthCheck makes /healthz ask check (the cluster's, say). Call it
// before Serve.
func (s *Server) SetHealthCheck(check HealthCheck) { s.health = check }

// serveHealth answers /healthz: 200 "ok" while the gateway serves; 200
// "degraded: <why>" when it serves its clients but a check fails (a load
// balancer must not take it out: its clients are still served).
func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if s.health != nil {
		if ok, why := s.health(); !ok {
			fmt.Fprintln(w, "degraded:", why)
			return
		}
	}
	fmt.Fprintln(w, "ok")
}
