// Package scripting runs an endpoint's Lua script as a gateway.Service.
//
// A script is compiled once and loaded into several Lua states. Each state is
// owned by one goroutine that takes events (connect, message, close, timer)
// from a bounded inbox; no lock is ever held around a Lua state. A client is
// pinned to one state, so its events are handled in order. Everything that
// must be shared between states (clients, their attributes, rooms) lives in
// the Go core and is reached through the API the scripts see.
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
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/gateway/store"
	"github.com/moongate/moongate/gateway/wsproto"
)

// Service runs one endpoint's script in one or more Lua states.
type Service struct {
	ep      config.Endpoint
	log     *slog.Logger
	metrics *metrics.Endpoint
	hub     *hub.Hub
	store   *store.Store
	states  []*state
	next    atomic.Uint32

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

var _ gateway.Service = (*Service)(nil)

// New compiles the endpoint's script, loads it into ep.States Lua states,
// runs the script's start handler, and returns the running service.
func New(ep config.Endpoint, log *slog.Logger, m *metrics.Endpoint) (*Service, error) {
	proto, err := Compile(ep.Script)
	if err != nil {
		return nil, err
	}
	if m == nil {
		m = metrics.Discard()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		ep: ep, metrics: m, hub: hub.New(), store: store.New(0), ctx: ctx, cancel: cancel,
		log: log.With("endpoint", ep.Path, "script", ep.Script),
	}
	for i := range max(ep.States, 1) {
		st, err := newState(s, i, proto)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.states = append(s.states, st)
		s.wg.Add(1)
		go st.run()
	}
	s.wg.Add(2)
	go s.watchBudgets()
	go func() {
		defer s.wg.Done()
		s.store.SweepEvery(s.ctx, 10*time.Second)
	}()
	if err := s.states[0].callSync(event{kind: evStart}); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Hub returns the service's clients and rooms.
func (s *Service) Hub() *hub.Hub { return s.hub }

// Close stops the service: each state handles what is already in its inbox,
// then its timers are cancelled and it is closed. Close waits for that.
func (s *Service) Close() {
	s.once.Do(s.cancel)
	s.wg.Wait()
}

// pick chooses the state a new client is pinned to.
func (s *Service) pick() *state {
	return s.states[int(s.next.Add(1)-1)%len(s.states)]
}

// Connect runs the script's connect handler for c before the upgrade. When
// the chosen state's inbox is full the connection is refused with 503.
func (s *Service) Connect(_ context.Context, c *client.Client) error {
	st := s.pick()
	c.Slot = st
	s.hub.Add(c)
	reply := make(chan error, 1)
	select {
	case st.inbox <- event{kind: evConnect, c: c, reply: reply}:
	default:
		s.hub.Remove(c)
		return &gateway.Refusal{Status: http.StatusServiceUnavailable, Reason: "service busy, try again"}
	}
	var err error
	select {
	case err = <-reply:
	case <-s.ctx.Done():
		err = &gateway.Refusal{Status: http.StatusServiceUnavailable, Reason: "service stopping"}
	}
	if err != nil {
		s.hub.Remove(c)
	}
	return err
}

// Message queues m for c's state. When the inbox is full it waits, which
// holds back reading from c (backpressure) until the state catches up.
func (s *Service) Message(ctx context.Context, c *client.Client, m wsproto.Message) {
	st := c.Slot.(*state)
	ev := event{kind: evMessage, c: c, data: string(m.Data), op: m.Op}
	select {
	case st.inbox <- ev:
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
}

// Closed queues c's close event; the script's close handler runs, then c
// leaves every room.
func (s *Service) Closed(c *client.Client, how client.Closed) {
	st := c.Slot.(*state)
	select {
	case st.inbox <- event{kind: evClose, c: c, how: how}:
	case <-s.ctx.Done():
		s.hub.Remove(c)
	}
}

// watchBudgets interrupts any handler that runs past the endpoint's budget.
func (s *Service) watchBudgets() {
	defer s.wg.Done()
	budget := s.budget()
	t := time.NewTicker(max(budget/5, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			for _, st := range s.states {
				st.interruptIfOver(now, budget)
			}
		case <-s.ctx.Done():
			return
		}
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

func (s *Service) String() string { return fmt.Sprintf("service %s (%s)", s.ep.Path, s.ep.Script) }

// Check compiles the endpoint's script and runs its top level in one Lua
// state, reporting the first problem as a *ScriptError, without starting
// the service.
func Check(ep config.Endpoint) error {
	proto, err := Compile(ep.Script)
	if err != nil {
		return err
	}
	s := &Service{ep: ep, metrics: metrics.Discard(), hub: hub.New(), store: store.New(0), log: slog.New(slog.DiscardHandler)}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	defer s.cancel()
	st, err := newState(s, 0, proto)
	if err != nil {
		return err
	}
	st.L.Close()
	return nil
}
