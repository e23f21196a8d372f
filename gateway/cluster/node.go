// Package cluster lets several Moongate nodes serve as one over Redis: the
// store a service's scripts share (Store), and, through the broker, the
// rooms, presence, history and client routing that span the nodes. It
// knows nothing about Lua; package scripting binds it.
//
// Everything a node keeps in Redis is under the cluster's prefix P ("mg"
// unless the config says otherwise): per service under "P:<endpoint
// path>:", per node under "P:node:<name>". docs/cluster.md
// lists the keys, their lifetimes and the failure policies.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// CallTimeout bounds one call a node makes to Redis on a script's behalf
// (a store operation): past it the call fails, and so does the script's
// call, with an error it can catch.
const CallTimeout = 5 * time.Second

// Node is this process as a member of a cluster: its name and its
// connection to the cluster's Redis server.
type Node struct {
	name   string // the config's name for it, in logs
	id     string // name and a random suffix: this process, in Redis
	prefix string // of every key, "<cluster.prefix>:"
	rdb    *redis.Client
	log    *slog.Logger
	subs   *subscriptions

	mu       sync.Mutex
	services map[string]*Rooms // by endpoint path: where other nodes' messages for a client go
	stores   map[string]*Store // by endpoint path

	published    prometheus.Counter // room messages published (one Redis call each)
	healthySince atomic.Int64       // unix ns since heartbeats succeed without a break; 0 while they fail
	outbox       outbox             // publications waiting for Redis (outage.go)

	everFailed bool // a heartbeat has failed (heartbeat's own)
	beaten     bool // a heartbeat has succeeded (heartbeat's own)
	flushHeld  bool // the outbox waits for the next beat (maintain's own)
	resyncDue  bool // the node's state must be registered anew (maintain's own)
	stop       context.CancelFunc
	wg         sync.WaitGroup // the node's goroutines: receiving, heartbeat
}

// Liveness: a node renews its place in the nodes set every
// HeartbeatInterval, promising to be alive for NodeTTL; past that, the
// others count it dead.
const (
	HeartbeatInterval = 2 * time.Second
	NodeTTL           = 8 * time.Second
)

// Open connects to the cluster's Redis server. A server that does not
// answer yet is not an error: the node starts, logs it, and its calls
// fail until the server is back (go-redis reconnects on its own).
func Open(ctx context.Context, cfg *config.Cluster, log *slog.Logger) (*Node, error) {
	url, err := cfg.RedisURL()
	if err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("cluster.redis: %w", err)
	}
	opts.ClientName = "moongate:" + cfg.Node
	opts.DialTimeout = 2 * time.Second
	opts.ReadTimeout = 3 * time.Second
	opts.WriteTimeout = 3 * time.Second
	opts.MaxRetries = 1
	n := &Node{name: cfg.Node, id: cfg.Node + "-" + randomSuffix(), prefix: cfg.Prefix + ":", rdb: redis.NewClient(opts), log: log.With("node", cfg.Node),
		services: make(map[string]*Rooms)}
	n.published = prometheus.NewCounter(prometheus.CounterOpts{Name: "moongate_cluster_publications_total",
		Help: "Room messages this node published to Redis: one Redis call each."})
	n.outbox.dropped = prometheus.NewCounter(prometheus.CounterOpts{Name: "moongate_cluster_dropped_publications_total",
		Help: "Room messages not published to the other nodes: made while Redis was unreachable, with the outbox full (this node's members had them)."})
	n.subs = newSubscriptions(n.rdb, n.log.Warn)
	pingCtx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	if err := n.rdb.Ping(pingCtx).Err(); err != nil {
		n.log.Warn("cluster: Redis does not answer yet; serving local clients meanwhile", "redis", redactURL(opts), "err", err)
	} else {
		n.log.Info("cluster: joined", "redis", redactURL(opts))
	}
	n.start()
	return n, nil
}

// start subscribes to the node's own channel and starts the goroutines
// receiving messages and renewing the node's liveness, until Close.
func (n *Node) start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	own := n.ownChannel()
	n.subs.mu.Lock()
	n.subs.subs[own] = &subscription{refs: 1, handle: n.onControl, ready: make(chan struct{})}
	n.subs.mu.Unlock()
	if err := n.subs.ps.Subscribe(ctx, own); err != nil {
		n.log.Warn("cluster: subscribe to the node's channel", "err", err)
	}
	beats := make(chan bool, 1) // a heartbeat succeeded; true: after an outage
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		n.subs.receive(ctx, own, func() { n.log.Info("cluster: Redis subscription restored") })
	}()
	go func() {
		defer n.wg.Done()
		n.heartbeat(ctx, beats)
	}()
	go func() {
		defer n.wg.Done()
		n.maintain(ctx, beats)
	}()
}

// maintain does, after each successful heartbeat, what needs Redis back
// (afterBeat), on a goroutine of its own: a long cleanup never delays the
// node's own heartbeat.
func (n *Node) maintain(ctx context.Context, beats <-chan bool) {
	for {
		select {
		case recovered := <-beats:
			callCtx, cancel := context.WithTimeout(ctx, reapLockTTL)
			n.afterBeat(callCtx, recovered)
			cancel()
		case <-ctx.Done():
			return
		}
	}
}

func (n *Node) ownChannel() string { return n.prefix + "node:" + n.id }
func (n *Node) nodesKey() string   { return n.prefix + "nodes" }

var (
	// heartbeatScript: KEYS nodes; ARGV ttl ms, name. Scores are deadlines
	// on Redis's clock, so the nodes' own clocks never matter. Returns 1
	// when Redis did not list the node (its first beat, or Redis lost its
	// state: restarted empty, or the node was taken for dead).
	heartbeatScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])`)

	// liveNodesScript: KEYS nodes. The nodes whose deadline has not passed.
	liveNodesScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')`)
)

// heartbeat renews the node's liveness every HeartbeatInterval until ctx
// ends, then withdraws it; each success is told to beats.
func (n *Node) heartbeat(ctx context.Context, beats chan bool) {
	t := time.NewTicker(HeartbeatInterval)
	defer t.Stop()
	failing := false
	for {
		callCtx, cancel := context.WithTimeout(ctx, CallTimeout)
		added, err := heartbeatScript.Run(callCtx, n.rdb, []string{n.nodesKey()}, NodeTTL.Milliseconds(), n.id).Int()
		cancel()
		forgotten := err == nil && added == 1 && n.beaten // Redis lost what the node registered
		if forgotten {
			n.log.Warn("cluster: Redis no longer lists this node (restarted empty?); registering anew")
		}
		n.beaten = n.beaten || err == nil
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			n.log.Warn("cluster: Redis unreachable; serving local clients", "err", err)
			failing = true
		case err == nil && failing:
			n.log.Info("cluster: Redis reachable again")
			failing = false
		}
		if err != nil {
			n.healthySince.Store(0)
		} else {
			recovered := n.healthySince.CompareAndSwap(0, time.Now().UnixNano()) && n.everFailed || forgotten
			select {
			case beats <- recovered:
			default: // maintain is busy; one beat waits already
				if recovered { // a recovery must not be missed: it replaces that one
					select {
					case <-beats:
					default:
					}
					beats <- true // only this goroutine sends: there is room now
				}
			}
		}
		n.everFailed = n.everFailed || err != nil
		select {
		case <-t.C:
		case <-ctx.Done():
			wctx, cancel := context.WithTimeout(context.Background(), time.Second)
			n.rdb.ZRem(wctx, n.nodesKey(), n.id)
			cancel()
			return
		}
	}
}

// afterBeat does what a successful heartbeat allows: after an outage,
// register anew what the node holds, and publish what the outbox holds
// at the next beat (by then every node has subscribed again to its rooms,
// which it does within a quarter of a second of Redis answering); then
// move on stuck room queues and clean up after dead nodes.
func (n *Node) afterBeat(ctx context.Context, recovered bool) {
	n.resyncDue = n.resyncDue || recovered
	if n.resyncDue {
		for _, r := range n.servicesNow() {
			if err := r.resync(ctx); err != nil {
				n.log.Warn("cluster: resync after the outage failed; will retry", "endpoint", r.path, "err", err)
				n.healthySince.Store(0)
				return
			}
		}
		for _, st := range n.storesNow() {
			if err := st.Reclaim(ctx); err != nil {
				n.log.Warn("cluster: keys bound to clients not set again; will retry", "err", err)
				n.healthySince.Store(0)
				return
			}
		}
		n.log.Info("cluster: state registered anew after the outage")
		n.resyncDue, n.flushHeld = false, true
		return
	}
	n.flushHeld = false
	if err := n.outbox.flush(ctx, n.rdb); err != nil {
		return // still failing: next time
	}
	for _, r := range n.servicesNow() {
		if err := r.releaseQueues(ctx); err != nil {
			n.log.Debug("cluster: releasing room queues failed; will retry", "endpoint", r.path, "err", err)
		}
	}
	n.reapDead(ctx)
}

// Healthy reports whether the node reaches Redis now (its last heartbeat
// succeeded); when not, why, for /healthz.
func (n *Node) Healthy() (bool, string) {
	if n.healthySince.Load() == 0 {
		return false, "cluster: Redis unreachable; serving this node's clients only"
	}
	return true, ""
}

// Collectors returns the node's metrics: publications made, and those
// dropped or waiting during an outage, and whether Redis is reached.
func (n *Node) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		n.published,
		n.outbox.dropped,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "moongate_cluster_outbox_publications",
			Help: "Room messages waiting for Redis to be published to the other nodes."},
			func() float64 { return float64(n.outbox.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "moongate_cluster_redis_up",
			Help: "1 when the node's last heartbeat reached Redis, else 0."},
			func() float64 {
				if ok, _ := n.Healthy(); ok {
					return 1
				}
				return 0
			}),
	}
}

// liveNodes returns the names of the nodes alive now.
func (n *Node) liveNodes(ctx context.Context) ([]string, error) {
	nodes, err := liveNodesScript.Run(ctx, n.rdb, []string{n.nodesKey()}).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("cluster: live nodes: %w", err)
	}
	return nodes, nil
}

// Rooms returns the rooms of the service at endpoint path, whose clients
// on this node local holds, and routes other nodes' messages for them
// there.
func (n *Node) Rooms(path string, local *hub.Hub) *Rooms {
	r := &Rooms{node: n, path: path, prefix: n.servicePrefix(path), local: local}
	n.mu.Lock()
	n.services[path] = r
	n.mu.Unlock()
	return r
}

func (n *Node) unregister(r *Rooms) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.services[r.path] == r {
		delete(n.services, r.path)
	}
}

// What one node asks another about one of its clients.
const (
	controlSend  = 's' // queue a message to it
	controlClose = 'c' // close it
	controlLeave = 'l' // take it out of a room (another node's script did)
)

// control publishes a request to node about client id of the service at
// path.
func (n *Node) control(ctx context.Context, node string, kind byte, path, id, arg, data string) error {
	msg := string(kind) + "\n" + path + "\n" + id + "\n" + arg + "\n" + data
	if err := n.rdb.Publish(ctx, n.prefix+"node:"+node, msg).Err(); err != nil {
		return fmt.Errorf("cluster: reach node %s: %w", node, err)
	}
	return nil
}

// onControl handles a request from another node.
func (n *Node) onControl(payload string) {
	parts := strings.SplitN(payload, "\n", 5)
	if len(parts) != 5 || len(parts[0]) != 1 {
		return
	}
	n.mu.Lock()
	r := n.services[parts[1]]
	n.mu.Unlock()
	if r != nil {
		r.onControl(parts[0][0], parts[2], parts[3], parts[4])
	}
}

// redactURL names the server without its password.
func redactURL(o *redis.Options) string { return fmt.Sprintf("%s db %d", o.Addr, o.DB) }

// Name returns the node's name, as the config gives it.
func (n *Node) Name() string { return n.name }

// ID returns the node's name in Redis: its name and a random suffix, so
// that a node restarted under the same name is a new node, and what the
// one before it left is cleaned away as a dead node's.
func (n *Node) ID() string { return n.id }

// randomSuffix returns 8 random hex digits.
func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Redis returns the node's Redis client.
func (n *Node) Redis() *redis.Client { return n.rdb }

// servicePrefix returns where the keys of the service at endpoint path live.
func (n *Node) servicePrefix(path string) string { return n.prefix + path + ":" }

// Store returns the shared store of the service at endpoint path.
// The same Store is returned for a path each time (it remembers the keys
// bound to the node's clients, see held.go).
func (n *Node) Store(path string) *Store {
	n.mu.Lock()
	defer n.mu.Unlock()
	if st := n.stores[path]; st != nil {
		return st
	}
	if n.stores == nil {
		n.stores = make(map[string]*Store)
	}
	st := NewStore(n.rdb, n.servicePrefix(path))
	n.stores[path] = st
	return st
}

// storesNow returns the node's stores.
func (n *Node) storesNow() []*Store {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Collect(maps.Values(n.stores))
}

// Close withdraws the node from the cluster, stops its goroutines and
// disconnects from Redis. The services using it must have stopped.
func (n *Node) Close() error {
	n.stop()
	n.subs.close()
	n.wg.Wait()
	if err := n.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("cluster: close: %w", err)
	}
	return nil
}
