package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// subscriptions is a node's one Redis Pub/Sub connection: its own
// channel (sends to its clients), and a channel per room that has a member
// on this node, subscribed while it has one. A goroutine receives
// everything, in the server's order, and hands each message to the
// channel's handler; go-redis reconnects and resubscribes after an error.
type subscriptions struct {
	ps  *redis.PubSub
	log func(msg string, args ...any)

	mu   sync.Mutex
	subs map[string]*subscription
}

// subscription is one channel: how many want it, what handles its
// messages, and ready, closed once Redis confirmed the subscription.
type subscription struct {
	refs   int
	handle func(payload string)
	ready  chan struct{}
}

func newSubscriptions(rdb *redis.Client, log func(string, ...any)) *subscriptions {
	return &subscriptions{ps: rdb.Subscribe(context.Background()), log: log, subs: make(map[string]*subscription)}
}

// want subscribes to channel (or counts one more user of it), and returns
// once Redis has confirmed it: from then on every message published to it
// reaches handle.
func (s *subscriptions) want(ctx context.Context, channel string, handle func(string)) error {
	s.mu.Lock()
	sub := s.subs[channel]
	if sub != nil {
		sub.refs++
		s.mu.Unlock()
		return s.wait(ctx, channel, sub)
	}
	sub = &subscription{refs: 1, handle: handle, ready: make(chan struct{})}
	s.subs[channel] = sub
	s.mu.Unlock()
	if err := s.ps.Subscribe(ctx, channel); err != nil {
		s.drop(channel)
		return fmt.Errorf("subscribe: %w", err)
	}
	return s.wait(ctx, channel, sub)
}

func (s *subscriptions) wait(ctx context.Context, channel string, sub *subscription) error {
	select {
	case <-sub.ready:
		return nil
	case <-ctx.Done():
		s.drop(channel)
		return fmt.Errorf("subscribe: %w", ctx.Err())
	}
}

// drop counts one user less of channel, unsubscribing with the last.
func (s *subscriptions) drop(channel string) {
	s.mu.Lock()
	sub := s.subs[channel]
	if sub == nil {
		s.mu.Unlock()
		return
	}
	sub.refs--
	last := sub.refs <= 0
	if last {
		delete(s.subs, channel)
	}
	s.mu.Unlock()
	if last {
		ctx, cancel := context.WithTimeout(context.Background(), CallTimeout)
		defer cancel()
		if err := s.ps.Unsubscribe(ctx, channel); err != nil {
			s.log("cluster: unsubscribe failed", "channel", channel, "err", err)
		}
	}
}

// maxResubscribeWait bounds the wait between attempts to receive again
// after an error: a node subscribes again within it once Redis answers.
const maxResubscribeWait = 250 * time.Millisecond

// receive hands every message to its channel's handler until ctx ends.
// After an error it waits (backing off up to maxResubscribeWait) and receives
// again, which reconnects and resubscribes; reconnected is called each
// time the node's own channel is confirmed again.
func (s *subscriptions) receive(ctx context.Context, own string, reconnected func()) {
	backoff := 10 * time.Millisecond
	confirmedOnce := false
	for {
		msg, err := s.ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return
			}
			backoff = min(2*backoff, maxResubscribeWait)
			continue
		}
		backoff = 10 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Message:
			s.mu.Lock()
			sub := s.subs[m.Channel]
			s.mu.Unlock()
			if sub != nil {
				sub.handle(m.Payload)
			}
		case *redis.Subscription:
			if m.Kind != "subscribe" {
				continue
			}
			s.confirm(m.Channel)
			if m.Channel == own {
				if confirmedOnce {
					reconnected()
				}
				confirmedOnce = true
			}
		}
	}
}

// confirm marks channel's subscription as confirmed by Redis.
func (s *subscriptions) confirm(channel string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub := s.subs[channel]; sub != nil {
		select {
		case <-sub.ready:
		default:
			close(sub.ready)
		}
	}
}

func (s *subscriptions) close() error { return s.ps.Close() }
