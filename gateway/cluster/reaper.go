package cluster

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/moongate/moongate/gateway/hub"
	"github.com/redis/go-redis/v9"
)

// Dead nodes.
//
// A node that stops renewing its liveness (killed, frozen, cut off) is
// dead once its deadline passes. Every node looks for dead nodes each
// HeartbeatInterval; one of them (the first to take the dead node's reap
// lock) cleans up after it, service by service: for each of the dead
// node's clients it runs the service's gone handler (the script's close
// handler, with the client as a remote client, so the script says its
// leaves and releases what the client held), then removes the client from
// every room, releases the store keys bound to it and forgets it. Then the
// node leaves the nodes set.
//
// A node that cannot reach Redis cannot renew its own liveness either: so
// that the end of an outage everyone shared does not make the first node
// back declare all the others dead, a node reaps only after its own
// heartbeats have succeeded for NodeTTL without a break.

// ReapConcurrency bounds the gone handlers a reaping node runs at once.
const ReapConcurrency = 32

// reapLockTTL bounds how long a reaping node holds a dead node: if it
// dies too, another takes over after it.
const reapLockTTL = 2 * time.Minute

// deadNodesScript: KEYS nodes. The nodes whose deadline has passed.
var deadNodesScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)`)

// reapDead cleans up after every dead node whose reap lock this node gets.
func (n *Node) reapDead(ctx context.Context) {
	if since := n.healthySince.Load(); since == 0 || time.Since(time.Unix(0, since)) < NodeTTL {
		return
	}
	dead, err := deadNodesScript.Run(ctx, n.rdb, []string{n.nodesKey()}).StringSlice()
	if err != nil {
		return
	}
	for _, node := range dead {
		if node == n.id {
			continue
		}
		lock := n.prefix + "reap:" + node
		won, err := n.rdb.SetNX(ctx, lock, n.id, reapLockTTL).Result()
		if err != nil || !won {
			continue
		}
		n.log.Warn("cluster: node dead; cleaning up after it", "dead", node)
		clients := 0
		for _, r := range n.servicesNow() {
			clients += r.reapNode(ctx, node)
		}
		n.rdb.ZRem(ctx, n.nodesKey(), node)
		n.rdb.Del(ctx, lock)
		n.log.Info("cluster: dead node cleaned up", "dead", node, "clients", clients)
	}
}

// servicesNow returns the services routed to now.
func (n *Node) servicesNow() []*Rooms {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Collect(maps.Values(n.services))
}

// OnGone sets what runs for each client of a dead node before it is
// removed: the script's close handler, given the client as a remote one.
// It must return once the handler has run.
func (r *Rooms) OnGone(fn func(ctx context.Context, m hub.Member)) {
	r.node.mu.Lock()
	defer r.node.mu.Unlock()
	r.gone = fn
}

// reapNode cleans up after the clients the dead node had in this service,
// ReapConcurrency at a time, and returns how many.
func (r *Rooms) reapNode(ctx context.Context, node string) int {
	ids, err := r.node.rdb.SMembers(ctx, r.nodeClients(node)).Result()
	if err != nil {
		return 0
	}
	r.node.mu.Lock()
	gone := r.gone
	r.node.mu.Unlock()
	sem := make(chan struct{}, ReapConcurrency)
	var wg sync.WaitGroup
	for _, id := range ids {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r.reapClient(ctx, node, id, gone)
		}()
	}
	wg.Wait()
	r.node.rdb.Del(ctx, r.nodeClients(node))
	return len(ids)
}

// reapClient runs gone for one client of a dead node, then removes it.
func (r *Rooms) reapClient(ctx context.Context, node, id string, gone func(context.Context, hub.Member)) {
	user, _ := r.node.rdb.HGet(ctx, r.clientKey(id), "user").Result()
	if gone != nil {
		gone(ctx, hub.Member{ID: id, Node: node, User: user})
	}
	err := removeClientScript.Run(ctx, r.node.rdb,
		[]string{r.clientKey(id), r.clientRooms(id), r.nodeClients(node), r.roomsIndex()}, id, r.prefix).Err()
	if err == nil {
		_, err = NewStore(r.node.rdb, r.prefix).ReleaseOwner(ctx, id)
	}
	if err != nil {
		r.node.log.Warn("cluster: a dead node's client not cleaned up", "client", id, "err", err)
	}
}
