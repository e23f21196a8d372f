package bench

import (
	"context"
	"log/slog"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/moongate/moongate/bench/load"
	"github.com/moongate/moongate/gateway/cluster"
	"github.com/moongate/moongate/gateway/cluster/clustertest"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/scripting"
	"github.com/redis/go-redis/v9"
)

// BenchmarkClusterFanout measures the shipped chat (scripts/chat/chat.lua)
// fanning out to 5,000 members of one room, on one node against three
// nodes of a cluster on the real Redis (127.0.0.1:6379) with the members
// spread evenly over them, at the same rate (20 messages a second, the
// single-node bar of docs/performance.md), in the same run. The two
// setups take turns (A B A B, each opened, run and closed in turn: both
// at once would pass this machine's 20,000 open files). b.N is not used:
// each turn runs 10 s after a 2 s warm-up.
//
// It reports each side's deliveries per second, p99 latency (publish to
// delivery) and lost deliveries, cluster/single (bar, issue 13: ≥ 0.8),
// p99 cluster/single (bar ≤ 2), and the Redis work per room message in
// the cluster: PUBLISH commands per message (bar: 1) and all Redis
// commands per message (the chat script's store calls included).
func BenchmarkClusterFanout(b *testing.B) {
	const members, rate, turns = 5000, 20.0, 2
	rdb := clustertest.Redis(b)
	script, err := filepath.Abs("../scripts/chat/chat.lua")
	if err != nil {
		b.Fatal(err)
	}
	ep := config.DefaultEndpoint("/chat", script)
	ep.SendQueue = 8192 // room for every presence event of the 5,000 joins: a member is not a slow consumer for them
	ep.Options = map[string]any{"rate_limit": 1_000_000, "rate_window": 1}
	cfg := load.RoomConfig{Proto: load.Chat{}, Members: members, Rooms: 1, Publishers: 1, Rate: rate, Size: 64, Parallel: 32, Drain: 10 * time.Second}

	var single, multi load.Result
	var publishes, commands, messages int64
	for range turns {
		single = addResult(single, fanoutTurn(b, cfg, []string{serveService(b, ep)}, nil))
		var before, after redisCommands
		res := fanoutTurn(b, cfg, clusterNodes(b, rdb, ep, 3), func(measured func()) {
			before = commandStats(b, rdb)
			measured()
			after = commandStats(b, rdb)
		})
		multi = addResult(multi, res)
		publishes += after["publish"] - before["publish"]
		commands += after.total() - before.total()
		messages += res.Sent
	}
	b.ReportMetric(single.PerSecond, "single-deliveries/s")
	b.ReportMetric(multi.PerSecond, "cluster-deliveries/s")
	b.ReportMetric(float64(single.Lost), "single-lost")
	b.ReportMetric(float64(multi.Lost), "cluster-lost")
	b.ReportMetric(float64(single.Errors), "single-errors")
	b.ReportMetric(float64(multi.Errors), "cluster-errors")
	b.ReportMetric(ms(single.Latency.P99), "single-p99-ms")
	b.ReportMetric(ms(multi.Latency.P99), "cluster-p99-ms")
	b.ReportMetric(multi.PerSecond/single.PerSecond, "cluster/single")
	b.ReportMetric(float64(multi.Latency.P99)/float64(single.Latency.P99), "p99-cluster/single")
	b.ReportMetric(float64(publishes)/float64(messages), "publishes/msg")
	b.ReportMetric(float64(commands)/float64(messages), "redis-commands/msg")
	b.ReportMetric(0, "ns/op")
}

// fanoutTurn joins the members at urls (spread over them), waits for the
// presence events of their joins to be delivered, warms up, runs one
// 10 s round and returns its result, closing the connections. around, if
// not nil, is called with the measured round (to count around it).
func fanoutTurn(b *testing.B, cfg load.RoomConfig, urls []string, around func(measured func())) load.Result {
	cfg.URLs = urls
	ctx := context.Background()
	r, err := load.NewRooms(ctx, &load.Dialer{Timeout: time.Minute}, "fanout", cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	if !r.Settle(2*time.Second, 5*time.Minute) {
		b.Fatal("the joins' presence events were still arriving after 5 minutes")
	}
	r.Run(ctx, 2*time.Second) // warm-up, not counted below
	warm := r.Result()
	if around == nil {
		around = func(measured func()) { measured() }
	}
	around(func() { r.Run(ctx, 10*time.Second) })
	res := r.Result()
	res.Sent -= warm.Sent
	res.Received -= warm.Received
	res.Lost -= warm.Lost
	res.PerSecond = float64(res.Received) / 10
	return res
}

// addResult sums two turns' results (latency: the worse of the two p99s).
func addResult(a, b load.Result) load.Result {
	turns := 1.0
	if a.Sent > 0 {
		turns = 2
	}
	a.Sent += b.Sent
	a.Received += b.Received
	a.Lost += b.Lost
	a.Errors += b.Errors
	a.PerSecond = (a.PerSecond*(turns-1) + b.PerSecond) / turns
	a.Latency.P99 = max(a.Latency.P99, b.Latency.P99)
	return a
}

// clusterNodes starts n in-process nodes of one cluster (a prefix of
// their own on rdb's server), each serving ep, and returns their URLs.
// They stop when the benchmark ends.
func clusterNodes(b *testing.B, rdb *redis.Client, ep config.Endpoint, n int) []string {
	ns := clustertest.Namespace(b, rdb)
	var urls []string
	for i := range n {
		node, err := cluster.Open(context.Background(), &config.Cluster{Redis: clustertest.URL(), Node: "bench-" + strconv.Itoa(i), Prefix: ns}, slog.New(slog.DiscardHandler))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { node.Close() }) // after the service's, registered next
		urls = append(urls, serveService(b, ep, scripting.WithCluster(node)))
	}
	return urls
}

// redisCommands is what INFO commandstats counts, by command.
type redisCommands map[string]int64

func (c redisCommands) total() int64 {
	n := int64(0)
	for _, v := range c {
		n += v
	}
	return n
}

var cmdstat = regexp.MustCompile(`(?m)^cmdstat_(\w+):calls=(\d+)`)

// commandStats returns the server's command counts.
func commandStats(b *testing.B, rdb *redis.Client) redisCommands {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	out := redisCommands{}
	for _, m := range cmdstat.FindAllStringSubmatch(info, -1) {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		out[m[1]] = n
	}
	return out
}
