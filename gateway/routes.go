package gateway

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/config"
)

// routes is what one config serves: its endpoints and static folders. It
// is never modified; Apply swaps in a new one.
type routes struct {
	cfg       *config.Config
	endpoints map[string]*endpoint
	static    []staticRoute // longest prefix first
}

type staticRoute struct {
	prefix  string
	handler http.Handler
}

// newRoutes builds the routes of cfg. An endpoint whose settings are the
// same as in prev keeps its handler.
func (s *Server) newRoutes(cfg *config.Config, services map[string]Service, prev *routes) (*routes, error) {
	rt := &routes{cfg: cfg, endpoints: make(map[string]*endpoint, len(cfg.Endpoints))}
	for _, ec := range cfg.Endpoints {
		svc := services[ec.Path]
		if svc == nil {
			return nil, fmt.Errorf("endpoint %s: no service", ec.Path)
		}
		if prev != nil {
			if old := prev.endpoints[ec.Path]; old != nil && old.service == svc && old.cfg.Equal(ec) {
				rt.endpoints[ec.Path] = old
				continue
			}
		}
		e, err := s.newEndpoint(ec, svc)
		if err != nil {
			return nil, err
		}
		rt.endpoints[ec.Path] = e
	}
	for _, st := range cfg.Static {
		prefix := strings.TrimSuffix(st.Prefix, "/") + "/"
		rt.static = append(rt.static, staticRoute{prefix, staticDir{prefix: prefix, dir: st.Dir}})
	}
	slices.SortFunc(rt.static, func(a, b staticRoute) int { return len(b.prefix) - len(a.prefix) })
	return rt, nil
}

// route sends a request to its endpoint, to the gateway's own paths, to
// the endpoint it is below when that endpoint's service answers plain HTTP
// (see HTTPHandler), or to a static folder, in that order, after checking its Host when the server
// checks Hosts (see hostChecked): a foreign one is answered 421.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	rt := s.routes.Load()
	if s.hostChecked(rt.cfg) && !s.hostAllowed(r, rt.cfg) {
		if e := rt.endpoints[r.URL.Path]; e != nil {
			e.metrics.Refused("host")
		}
		http.Error(w, "this Host is not served here", http.StatusMisdirectedRequest)
		return
	}
	over := overLimit(r)
	if over { // a connection past the limits gets one answer
		w.Header().Set("Connection", "close")
	}
	if e := rt.endpoints[r.URL.Path]; e != nil {
		if h := e.httpHandler(); h != nil && !isUpgrade(r) {
			e.serveScriptHTTP(w, r, h)
			return
		}
		e.ServeHTTP(w, r)
		return
	}
	if h, pattern := s.mux.Handler(r); pattern != "" {
		h.ServeHTTP(w, r)
		return
	}
	if e, h := rt.below(r); e != nil && !isUpgrade(r) {
		e.serveScriptHTTP(w, r, h)
		return
	}
	if over {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections, try again later", http.StatusServiceUnavailable)
		return
	}
	for _, st := range rt.static {
		switch {
		case strings.HasPrefix(r.URL.Path, st.prefix):
			st.handler.ServeHTTP(w, r)
			return
		case r.URL.Path+"/" == st.prefix:
			redirectSlash(w, r)
			return
		}
	}
	http.NotFound(w, r)
}

// Apply switches the server to cfg (services maps each of its endpoint
// paths to its service) without dropping a connection that stays served.
// New endpoints serve at once. The clients of a removed endpoint are closed
// with 1001 once the messages they have sent are answered (as in Shutdown,
// within cfg's shutdown_timeout). A changed endpoint's limits apply to new
// connections, and its max_message_bytes and on_full to connected clients
// too. The listen address cannot change this way. On error nothing changes.
func (s *Server) Apply(cfg *config.Config, services map[string]Service) error {
	old := s.routes.Load()
	rt, err := s.newRoutes(cfg, services, old)
	if err != nil {
		return err
	}
	s.routes.Store(rt)
	s.mu.Lock()
	defer s.mu.Unlock()
	for path, e := range old.endpoints {
		if rt.endpoints[path] == nil {
			e.removed.Store(true)
		}
	}
	for c, lc := range s.live {
		switch next := rt.endpoints[lc.e.cfg.Path]; {
		case next == nil:
			go s.retireClient(cfg.ShutdownTimeout, lc.e, c)
		case next != lc.e:
			c.SetLimits(next.opts.MaxMessageBytes, next.opts.OnFull)
		}
	}
	return nil
}

// Config returns the config the server runs.
func (s *Server) Config() *config.Config { return s.routes.Load().cfg }

// retireClient closes c, a client of the removed endpoint e, with 1001
// once its messages are answered or timeout has passed.
func (s *Server) retireClient(timeout time.Duration, e *endpoint, c *client.Client) {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	e.goAway(ctx, c, "endpoint removed")
}
