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
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/moongate/moongate/gateway/config"
	"github.com/redis/go-redis/v9"
)

// CallTimeout bounds one call a node makes to Redis on a script's behalf
// (a store operation): past it the call fails, and so does the script's
// call, with an error it can catch.
const CallTimeout = 5 * time.Second

// Node is this process as a member of a cluster: its name and its
// connection to the cluster's Redis server.
type Node struct {
	name   string
	prefix string // of every key, "<cluster.prefix>:"
	rdb    *redis.Client
	log    *slog.Logger
}

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
	n := &Node{name: cfg.Node, prefix: cfg.Prefix + ":", rdb: redis.NewClient(opts), log: log.With("node", cfg.Node)}
	pingCtx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	if err := n.rdb.Ping(pingCtx).Err(); err != nil {
		n.log.Warn("cluster: Redis does not answer yet; serving local clients meanwhile", "redis", redactURL(opts), "err", err)
	} else {
		n.log.Info("cluster: joined", "redis", redactURL(opts))
	}
	return n, nil
}

// redactURL names the server without its password.
func redactURL(o *redis.Options) string { return fmt.Sprintf("%s db %d", o.Addr, o.DB) }

// Name returns the node's name.
func (n *Node) Name() string { return n.name }

// Redis returns the node's Redis client.
func (n *Node) Redis() *redis.Client { return n.rdb }

// servicePrefix returns where the keys of the service at endpoint path live.
func (n *Node) servicePrefix(path string) string { return n.prefix + path + ":" }

// Store returns the shared store of the service at endpoint path.
func (n *Node) Store(path string) *Store { return NewStore(n.rdb, n.servicePrefix(path)) }

// Close disconnects from Redis.
func (n *Node) Close() error {
	if err := n.rdb.Close(); err != nil && !errors.Is(err, redis.ErrClosed) {
		return fmt.Errorf("cluster: close: %w", err)
	}
	return nil
}
