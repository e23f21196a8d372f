package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/gatewaytest"
	"github.com/moongate/moongate/gateway/metrics"
	"github.com/moongate/moongate/scripting"
	"github.com/moongate/moongate/scripting/reload"
)

// stampedChat is scripts/chat/chat.lua with every message stamped v=k.
func stampedChat(b *testing.B, k int) []byte {
	src, err := os.ReadFile("../scripts/chat/chat.lua")
	if err != nil {
		b.Fatal(err)
	}
	const at = "ts = clock.millis(), id = next_id() }"
	return []byte(strings.Replace(string(src), at, fmt.Sprintf("ts = clock.millis(), id = next_id(), v = %d }", k), 1))
}

// sample is one message a sender got back: when it was sent, how long it
// took, and which version of the script handled it.
type sample struct {
	sent    time.Time
	latency time.Duration
	version int
}

// BenchmarkReloadUnderLoad saves chat.lua b.N times while 1,000 clients are
// connected (50 rooms of 20) and one client per room says something every
// 50 ms. It reports how long a save takes to serve (save to the first
// message handled by the new version, 40 ms of debounce included), and
// the latency of the messages sent within 200 ms of a save against the
// messages sent at other times, measured in the same run.
func BenchmarkReloadUnderLoad(b *testing.B) {
	const clients, rooms = 1000, 50
	dir := b.TempDir()
	script := filepath.Join(dir, "chat.lua")
	os.WriteFile(script, stampedChat(b, 0), 0o644)
	os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("# not read: the benchmark builds the config\n"), 0o644)
	ep := config.DefaultEndpoint("/chat", script)
	ep.SendQueue = 4096
	ep.Options = map[string]any{"rate_limit": 1_000_000}
	cfg := &config.Config{File: filepath.Join(dir, "config.yaml"), Endpoints: []config.Endpoint{ep}, ShutdownTimeout: time.Second}
	m := metrics.New()
	log := slog.New(slog.DiscardHandler)
	svc, err := scripting.New(ep, log, m.Endpoint(ep.Path))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(svc.Close)
	srv := gatewaytest.Start(b, cfg, map[string]gateway.Service{ep.Path: svc}, m)
	mgr := reload.New(cfg, map[string]*scripting.Service{ep.Path: svc}, srv, log, m)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go mgr.Watch(ctx)

	var mu sync.Mutex
	var samples []sample
	seen := make(chan int, 1000) // versions senders observe
	conns := make([]net.Conn, clients)
	for i := range conns {
		conns[i] = chatLogin(b, srv.URL("/chat"), fmt.Sprintf("c%d", i), fmt.Sprintf("r%d", i%rooms))
	}
	for i, c := range conns {
		if i < rooms {
			go collect(c, fmt.Sprintf("c%d", i), func(s sample) {
				mu.Lock()
				samples = append(samples, s)
				mu.Unlock()
				select {
				case seen <- s.version:
				default:
				}
			})
		} else {
			go drain(c)
		}
	}
	var senders sync.WaitGroup
	for i := range rooms {
		senders.Add(1)
		go func() {
			defer senders.Done()
			say(ctx, conns[i], fmt.Sprintf("r%d", i), 50*time.Millisecond)
		}()
	}
	time.Sleep(time.Second) // steady state before the first save

	var reloadTimes []time.Duration
	var windows []time.Time
	b.ResetTimer()
	for k := 1; k <= b.N; k++ {
		saved := time.Now()
		windows = append(windows, saved)
		os.WriteFile(script, stampedChat(b, k), 0o644)
		for v := range seen {
			if v == k {
				reloadTimes = append(reloadTimes, time.Since(saved))
				break
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
	b.StopTimer()
	stop()
	senders.Wait()
	for _, c := range conns {
		c.Close()
	}

	mu.Lock()
	defer mu.Unlock()
	var during, steady []time.Duration
	for _, s := range samples {
		if inWindow(s.sent, windows, 200*time.Millisecond) {
			during = append(during, s.latency)
		} else {
			steady = append(steady, s.latency)
		}
	}
	report(b, "reload", reloadTimes)
	report(b, "msg-steady", steady)
	report(b, "msg-reload", during)
	if len(steady) > 0 && len(during) > 0 {
		b.ReportMetric(ms(quantile(during, 0.99))/ms(quantile(steady, 0.99)), "msg-p99-reload/steady")
		b.ReportMetric(ms(slices.Max(during))-ms(slices.Max(steady)), "extra-max-delay-ms")
	}
	b.ReportMetric(0, "ns/op")
}

// chatLogin connects, says hello as nick and joins room.
func chatLogin(b *testing.B, url, nick, room string) net.Conn {
	c, _, _, err := ws.Dial(context.Background(), url)
	if err != nil {
		b.Fatal(err)
	}
	for _, req := range []string{`{"type":"hello","nick":"` + nick + `"}`, `{"type":"join","room":"` + room + `"}`} {
		if err := wsutil.WriteClientText(c, []byte(req)); err != nil {
			b.Fatal(err)
		}
		if _, err := wsutil.ReadServerText(c); err != nil {
			b.Fatal(err)
		}
	}
	return c
}

// say sends a message stamped with its send time every interval until ctx ends.
func say(ctx context.Context, c net.Conn, room string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			msg := `{"type":"say","room":"` + room + `","text":"` + strconv.FormatInt(time.Now().UnixNano(), 10) + `"}`
			if wsutil.WriteClientText(c, []byte(msg)) != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// collect reads a sender's messages and records its own.
func collect(c net.Conn, nick string, record func(sample)) {
	for {
		data, err := wsutil.ReadServerText(c)
		if err != nil {
			return
		}
		var m struct {
			Type, From, Text string
			V                int
		}
		if json.Unmarshal(data, &m) != nil || m.Type != "message" || m.From != nick {
			continue
		}
		ns, _ := strconv.ParseInt(m.Text, 10, 64)
		sent := time.Unix(0, ns)
		record(sample{sent: sent, latency: time.Since(sent), version: m.V})
	}
}

// drain reads and discards until the connection ends.
func drain(c net.Conn) {
	for {
		if _, err := wsutil.ReadServerText(c); err != nil {
			return
		}
	}
}

func inWindow(t time.Time, starts []time.Time, width time.Duration) bool {
	for _, s := range starts {
		if !t.Before(s) && t.Before(s.Add(width)) {
			return true
		}
	}
	return false
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// report records p50, p99 and max of d as metrics named prefix-*-ms.
func report(b *testing.B, prefix string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	b.ReportMetric(ms(quantile(d, 0.5)), prefix+"-p50-ms")
	b.ReportMetric(ms(quantile(d, 0.99)), prefix+"-p99-ms")
	b.ReportMetric(ms(slices.Max(d)), prefix+"-max-ms")
}
