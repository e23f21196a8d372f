package bench

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moongate/moongate/bench/load"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/db/dbtest"
	"github.com/moongate/moongate/scripting"
)

// BenchmarkChatHistory measures the shipped scripts/chat/chat.lua with a
// SQLite database granted (every room message stored in a transaction
// before it is published, as config.example.yaml serves it) against the
// same script with no database (history in memory only), in the same run
// and under the same load: 48 clients in 8 rooms of 6 (states: auto),
// each saying something and waiting until the room's broadcast brings it
// back before saying the next, while reading every other member's
// messages. The two services run side by side and take turns in 10
// blocks, so that machine noise hits both alike. b.N is the number of
// messages each side publishes. It reports each side's messages
// published per second and p99 (say to its own delivery), and
// sqlite/memory, the ratio of throughputs (bar, issue 11: ≥ 0.5).
func BenchmarkChatHistory(b *testing.B) {
	const clients, rooms, blocks = 48, 8, 10
	script, err := filepath.Abs("../scripts/chat/chat.lua")
	if err != nil {
		b.Fatal(err)
	}
	mem := config.DefaultEndpoint("/chat", script)
	mem.SendQueue = 1024
	mem.Options = map[string]any{"rate_limit": 1_000_000, "rate_window": 1} // the load says more than a person types
	lite := mem
	lite.Databases = []string{"main"}
	memClients := chatClients(b, serveService(b, mem), clients, rooms)
	liteClients := chatClients(b, serveService(b, lite, scripting.WithDatabases(dbtest.Set{"main": dbtest.SQLite(b, "main")})), clients, rooms)

	chatLoop(b, memClients, 5, load.NewHistogram()) // warm up
	chatLoop(b, liteClients, 5, load.NewHistogram())
	perBlock := max(b.N/blocks/clients, 1)
	memHist, liteHist := load.NewHistogram(), load.NewHistogram()
	var memTime, liteTime time.Duration
	var memDelivered, liteDelivered int64
	b.ResetTimer()
	for range blocks {
		d, n := chatLoop(b, memClients, perBlock, memHist)
		memTime, memDelivered = memTime+d, memDelivered+n
		d, n = chatLoop(b, liteClients, perBlock, liteHist)
		liteTime, liteDelivered = liteTime+d, liteDelivered+n
	}
	b.StopTimer()
	said := float64(blocks * perBlock * clients)
	memRate, liteRate := said/memTime.Seconds(), said/liteTime.Seconds()
	b.ReportMetric(memRate, "memory-msg/s")
	b.ReportMetric(liteRate, "sqlite-msg/s")
	b.ReportMetric(float64(memDelivered)/memTime.Seconds(), "memory-deliveries/s")
	b.ReportMetric(float64(liteDelivered)/liteTime.Seconds(), "sqlite-deliveries/s")
	b.ReportMetric(ms(memHist.Summary().P99), "memory-p99-ms")
	b.ReportMetric(ms(liteHist.Summary().P99), "sqlite-p99-ms")
	b.ReportMetric(liteRate/memRate, "sqlite/memory")
	b.ReportMetric(0, "ns/op")
}

// chatClient is one chat connection of the benchmark.
type chatClient struct {
	conn *load.Conn
	nick string
	room string
	seq  int // messages said so far
}

// chatClients connects n clients to url, says hello and joins room0 …
// room(rooms-1) in turn, and waits until every room has all its members.
func chatClients(b testing.TB, url string, n, rooms int) []*chatClient {
	cs := make([]*chatClient, n)
	for i := range cs {
		cs[i] = &chatClient{nick: "c" + strconv.Itoa(i), room: "room" + strconv.Itoa(i%rooms)}
	}
	conns, err := load.DialAll(context.Background(), &load.Dialer{}, n, 8, func(int) string { return url },
		func(i int, c *load.Conn) error { return load.Chat{}.Join(c, cs[i].nick, cs[i].room) }, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { load.CloseAll(conns) })
	for i, c := range conns {
		cs[i].conn = c
	}
	return cs
}

// chatLoop has every client say n messages in its room, each once the
// previous one came back to it, all clients at once. It records each
// message's time from say to its delivery to the sender in hist and
// returns the wall time and the deliveries read (every member's).
func chatLoop(b testing.TB, cs []*chatClient, n int, hist *load.Histogram) (time.Duration, int64) {
	var delivered atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var msg []byte
			for range n {
				c.seq++
				text := []byte(c.nick + "-" + strconv.Itoa(c.seq))
				msg = load.Chat{}.Publish(msg[:0], c.room, text)
				t := time.Now()
				if err := c.conn.WriteText(msg); err != nil {
					b.Error(err)
					return
				}
				for {
					p, err := c.conn.Read()
					if err != nil {
						b.Error(err)
						return
					}
					if (load.Chat{}).IsError(p) {
						b.Errorf("%s: %s", c.nick, p)
						return
					}
					got, ok := load.Chat{}.Delivery(p)
					if !ok {
						continue
					}
					delivered.Add(1)
					if bytes.Equal(got, text) {
						break
					}
				}
				hist.Record(i, time.Since(t))
			}
		}()
	}
	wg.Wait()
	return time.Since(start), delivered.Load()
}
