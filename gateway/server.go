// Package gateway is Moongate's core: it serves the endpoints of a config,
// upgrades requests to WebSocket, runs each connection, and hands the
// clients' events to the endpoint's Service. It knows nothing about Lua.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

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
	routes  atomic.Pointer[routes] // the config's endpoints and static folders
	ctx     context.Context        // cancelled when shutdown starts
	cancel  context.CancelFunc

	tls    *tls.Config     // nil: plain TCP
	poller *netpoll.Poller // where idle connections wait; nil: each keeps a goroutine

	mu       sync.Mutex
	closing  bool
	live     map[*client.Client]liveConn
	perIP    map[string]int // admitted connections by remote address
	admitted int            // admitted connections in all
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
	s := &Server{log: log, metrics: m, ctx: ctx, cancel: cancel, live: make(map[*client.Client]liveConn), perIP: make(map[string]int)}
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
	handshakeTimeout := cfg.Limits.HandshakeTimeout
	if handshakeTimeout <= 0 {
		handshakeTimeout = config.DefaultHandshakeTimeout
	}
	if s.poller, err = netpoll.New(ctx); err != nil {
		log.Warn("idle connections will each keep a goroutine", "err", err)
	}
	s.routes.Store(rt)
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	s.mux.Handle("/metrics", m.Handler())
	s.http = &http.Server{
		Handler:           http.HandlerFunc(s.route),
		ReadHeaderTimeout: handshakeTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
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
		},
	}, nil
}

// HandleAdmin serves h at path (the admin endpoints, profiles) to clients
// on a loopback address only; others get 403. Call it before Serve.
func (s *Server) HandleAdmin(path string, h http.Handler) {
	s.mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			http.Error(w, "the admin endpoints answer only on this machine", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// fromLoopback reports whether r came from a loopback address.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Handler returns the server's HTTP handler (endpoints, static files,
// /healthz and /metrics).
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Serve accepts connections on ln until Shutdown. It returns
// http.ErrServerClosed after a shutdown.
func (s *Server) Serve(ln net.Listener) error {
	rt := s.routes.Load()
	ws, web := "ws://", "http://"
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

// Shutdown stops accepting, closes every client with 1001 after its queue
// drains, and waits for their connections to end and the services to be
// told. When ctx expires first, the remaining connections are cut.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.cancel() // every client: Shutdown (1001, drain)
	err := s.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.cutAll()
		<-done
		err = errors.Join(err, fmt.Errorf("shutdown: connections cut after deadline: %w", ctx.Err()))
	}
	return err
}

// cutAll ends every live connection at once, without a close handshake.
func (s *Server) cutAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c, lc := range s.live {
		c.Cut()
		lc.nc.SetDeadline(time.Now())
	}
}

// admit counts a new connection against the config's limits (global and
// per remote address) and returns how to release it, or false when a limit
// is reached.
func (s *Server) admit(r *http.Request) (release func(), ok bool) {
	limits := s.routes.Load().cfg.Limits
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if (limits.MaxConnections > 0 && s.admitted >= limits.MaxConnections) ||
		(limits.MaxPerIP > 0 && s.perIP[ip] >= limits.MaxPerIP) {
		return nil, false
	}
	s.admitted++
	s.perIP[ip]++
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.admitted--
		if s.perIP[ip]--; s.perIP[ip] == 0 {
			delete(s.perIP, ip)
		}
	}, true
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
	release, ok := s.admit(r)
	if !ok {
		e.refuse(w, "limit", http.StatusServiceUnavailable, "too many connections, try again later", http.Header{"Retry-After": {"5"}})
		return
	}
	running := false // once the connection runs, its end releases the admission
	defer func() {
		if !running {
			release()
		}
	}()
	var claims map[string]any
	if e.auth != nil {
		var err error
		if claims, err = e.auth.Verify(r); err != nil {
			e.refuse(w, "auth", http.StatusUnauthorized, err.Error(), http.Header{"Www-Authenticate": {"Bearer"}})
			return
		}
	}
	protocol := chooseProtocol(r, e.cfg.Subprotocols)
	c := client.New(&client.Request{Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header,
		RemoteAddr: r.RemoteAddr, Host: r.Host, Claims: claims, Protocol: protocol}, e.opts, e.metrics)
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
		upgrader.Negotiate = deflate.Negotiate
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
	running = true
	c.Run(s.ctx, nc, rw.Reader, client.Handlers{
		Message: func(m wsproto.Message) { e.service.Message(s.ctx, c, m) },
		Flush:   e.flusher(c),
		Closed: func(how client.Closed) {
			e.metrics.Connections.Dec()
			e.service.Closed(c, how)
			s.untrack(c)
			release()
		},
	}, s.poller)
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
