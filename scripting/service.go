// Package scripting runs an endpoint's Lua script as a gateway.Service.
//
// A script is compiled once and loaded into several Lua states. Each state is
// run by one goroutine at a time that takes events (connect, message, close,
// timer) from a bounded inbox; no lock is ever held around a Lua state. A
// handler that makes a call that waits (db, http) hands the state to another
// goroutine meanwhile (suspend.go). A client is pinned to one state, so its
// events are handled in order. Everything that
// must be shared between states (clients, their attributes, rooms, the
// store) lives in the Go core and is reached through the API the scripts
// see, which is what lets a new version of the script take over the same
// clients (see Reload).
package scripting

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/cluster"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/gateway/store"
	"github.com/moongate/moongate/gateway/wsproto"
)

// Service runs one endpoint's script in one or more Lua states.
type Service struct {
	log     *slog.Logger
	metrics *metrics.Endpoint
	hub     *hub.Hub
	// store is the in-process store (nil in a cluster), kv the store the
	// scripts reach: store's, or the cluster's in Redis.
	store   *store.Store
	kv      store.KV
	cluster *cluster.Node // nil: the gateway runs alone
	rooms   hub.Rooms     // hub's rooms, or the cluster's (which deliver through hub)
	// databases are the gateway's databases (nil: none configured).
	databases Databases
	next      atomic.Uint32 // round robin over states for new clients
	nextHTTP  atomic.Uint32 // round robin over states for HTTP requests

	// mu is held for reading while an event is put in an inbox, and for
	// writing while the current generation is replaced, so that no event
	// ever lands in a generation that has been retired.
	mu  sync.RWMutex
	gen *generation

	named   namedTimers   // timer.at and named timer.every: the service's, across reloads
	clock   Clock         // the scripts' time (clock.go)
	started chan struct{} // closed once the first generation is current

	reloadMu sync.Mutex // one reload at a time
	status   statusBox
	modHook  moduleHook // told when the running version loads a module (modules.go)

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the service started
	once   sync.Once
}

var _ gateway.Service = (*Service)(nil)

// pin is what a Service keeps in client.Slot: the index of the client's
// state, which stays valid across reloads.
type pin int

// New compiles the endpoint's script, loads it into ep.States Lua states,
// runs the script's start handler, and returns the running service.
func New(ep config.Endpoint, log *slog.Logger, m *metrics.Endpoint, opts ...Option) (*Service, error) {
	src, err := readScript(ep.Script)
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = metrics.Discard()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		metrics: m, hub: hub.New(), ctx: ctx, cancel: cancel, clock: RealClock{},
		log: log.With("endpoint", ep.Path), started: make(chan struct{}),
	}
	for _, opt := range opts {
		opt(s)
	}
	s.openStore(ep)
	s.named.clock = s.clock
	gen, err := s.build(ep, src, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	s.gen = gen
	close(s.started)
	s.launch(gen)
	close(gen.ready)
	s.status.loaded(gen.version)
	if s.store != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.store.SweepEvery(s.ctx, 10*time.Second)
		}()
	}
	return s, nil
}

// openStore gives the service its store and rooms: the cluster's, shared
// with the other nodes, or its own in process.
func (s *Service) openStore(ep config.Endpoint) {
	if s.cluster != nil {
		s.kv = s.cluster.Store(ep.Path)
		r := s.cluster.Rooms(ep.Path, s.hub)
		r.OnGone(s.clientGone)
		s.rooms = r
		return
	}
	s.store = store.New(0, store.WithClock(s.clock.Now))
	s.kv = s.store.Local()
	s.rooms = s.hub.Local()
}

// Hub returns the service's clients and rooms.
func (s *Service) Hub() *hub.Hub { return s.hub }

// Close is Shutdown without a deadline: it waits for as long as the
// service takes to stop.
func (s *Service) Close() { s.Shutdown(context.Background()) }

// Shutdown stops the service: each state handles what is already in its
// inbox (each handler still under the budget), then its timers are
// cancelled and it is closed. Shutdown waits for that until ctx ends; then
// it returns an error and abandons what is left: a state still busy (a
// handler in a call no budget interrupts, say) goes on, on its own
// goroutine, and closes when it is done.
func (s *Service) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		s.named.stopAll()
		s.cancel()
	})
	stopped := make(chan struct{})
	go func() { // ends when the service's goroutines do
		s.wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		s.mu.RLock()
		s.gen.http.Close()
		s.mu.RUnlock()
		if r, ok := s.rooms.(interface{ Stop() }); ok {
			r.Stop() // other nodes' messages for its clients go nowhere now
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("states still busy at the deadline: %w", ctx.Err())
	}
}

// enqueue puts ev in the inbox of the current state for p, waiting for
// room unless wait is false (then it reports false when the inbox is full).
// It gives up when done or the service is closed.
func (s *Service) enqueue(p pin, ev event, wait bool, done <-chan struct{}) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.put(s.stateFor(p), ev, wait, done)
}

// stateFor returns the current state for p; s.mu must be held.
func (s *Service) stateFor(p pin) *state { return s.gen.states[int(p)%len(s.gen.states)] }

// put puts ev in st's inbox, as enqueue does; s.mu must be held for reading.
func (s *Service) put(st *state, ev event, wait bool, done <-chan struct{}) bool {
	if !wait {
		select {
		case st.inbox <- ev:
			return true
		default:
			return false
		}
	}
	select {
	case st.inbox <- ev:
		return true
	case <-done:
	case <-s.ctx.Done():
	}
	return false
}

// Connect runs the script's connect handler for c before the upgrade. When
// the chosen state's inbox is full the connection is refused with 503.
func (s *Service) Connect(_ context.Context, c *client.Client) error {
	p := pin(s.next.Add(1) - 1)
	c.Slot = p
	s.addClient(c)
	reply := make(chan error, 1)
	if !s.enqueue(p, event{kind: evConnect, c: c, reply: reply}, false, nil) {
		s.removeClient(c)
		return &gateway.Refusal{Status: http.StatusServiceUnavailable, Reason: "service busy, try again"}
	}
	var err error
	select {
	case err = <-reply:
	case <-s.ctx.Done():
		err = &gateway.Refusal{Status: http.StatusServiceUnavailable, Reason: "service stopping"}
	}
	if err != nil {
		s.removeClient(c)
	}
	return err
}

// Message queues m for c's state. When the inbox is full, in events or in
// payload bytes (inbox_bytes), it waits, which holds back reading from c
// (backpressure) until the state catches up. The payload is copied only
// once it has room, so a reader waiting for room holds no copy of it.
func (s *Service) Message(ctx context.Context, c *client.Client, m wsproto.Message) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := s.stateFor(c.Slot.(pin))
	n := int64(len(m.Data))
	if !st.inboxBytes.acquire(n, inboxLimit(st.gen.ep), ctx.Done(), s.ctx.Done()) {
		return
	}
	if !s.put(st, event{kind: evMessage, c: c, data: string(m.Data), op: m.Op}, true, ctx.Done()) {
		st.inboxBytes.release(n)
	}
}

// Flush returns once the events of c queued before the call have been
// handled, or ctx is done.
func (s *Service) Flush(ctx context.Context, c *client.Client) {
	done := make(chan error)
	if s.enqueue(c.Slot.(pin), event{kind: evBarrier, c: c, reply: done}, true, ctx.Done()) {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}

// Closed queues c's close event; the script's close handler runs, then c
// leaves every room.
func (s *Service) Closed(c *client.Client, how client.Closed) {
	if !s.enqueue(c.Slot.(pin), event{kind: evClose, c: c, how: how}, true, nil) {
		s.removeClient(c)
	}
}

// refusal converts what a connect handler returned into the gateway's refusal.
func refusal(status int, reason string) error {
	if status < 400 || status > 599 {
		status = http.StatusForbidden
	}
	if reason == "" {
		reason = http.StatusText(status)
	}
	return &gateway.Refusal{Status: status, Reason: reason}
}

func (s *Service) String() string {
	ep := s.Endpoint()
	return fmt.Sprintf("service %s (%s)", ep.Path, ep.Script)
}

// Endpoint returns the endpoint config the service runs with.
func (s *Service) Endpoint() config.Endpoint {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.gen.ep
}

// addClient registers c, a client connecting: in the hub, and in a
// cluster in Redis too (a failure there is logged: the client is served
// here all the same, and other nodes do not see it).
func (s *Service) addClient(c *client.Client) {
	if s.cluster == nil {
		s.hub.Add(c)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := s.rooms.Add(ctx, c); err != nil {
		s.log.Warn("client not registered in the cluster", "client", c.ID(), "err", err)
	}
}

// removeClient unregisters c and takes it out of every room: in the hub,
// and in a cluster in Redis too (a failure there is logged).
func (s *Service) removeClient(c *client.Client) {
	if s.cluster == nil {
		s.hub.Remove(c)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if _, err := s.rooms.Remove(ctx, c); err != nil {
		s.log.Warn("client not unregistered in the cluster", "client", c.ID(), "err", err)
	}
}

// clientGone runs the script's close handler for m, a client of a node
// of the cluster that died, on one of the states, and returns once it
// has run (or ctx ends). The cluster then removes m from its rooms and
// releases its keys.
func (s *Service) clientGone(ctx context.Context, m hub.Member) {
	select {
	case <-s.started:
	case <-ctx.Done():
		return
	}
	done := make(chan error)
	p := pin(s.next.Add(1) - 1)
	if !s.enqueue(p, event{kind: evGone, value: m, reply: done}, true, ctx.Done()) {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}
