package bench

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/bench/load"
	"github.com/moongate/moongate/gateway"
	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/config"
	"github.com/moongate/moongate/gateway/gatewaytest"
	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/wsproto"
)

// roomService puts every client in one room and ignores what they send.
type roomService struct{ hub *hub.Hub }

func (s roomService) Connect(_ context.Context, c *client.Client) error {
	s.hub.Add(c)
	s.hub.Join("room", c)
	return nil
}
func (roomService) Message(context.Context, *client.Client, wsproto.Message) {}
func (s roomService) Closed(c *client.Client, _ client.Closed)               { s.hub.Remove(c) }

// BenchmarkBroadcast measures the Go core's broadcast path over real
// sockets: one frame, encoded once, queued to every member of a room and
// written by each member's writer, until every member has read it. Its
// allocs/op must not grow with the number of members: the path allocates
// nothing per recipient.
func BenchmarkBroadcast(b *testing.B) {
	for _, members := range []int{10, 100, 1000} {
		b.Run("members="+strconv.Itoa(members), func(b *testing.B) {
			h := hub.New()
			ep := config.DefaultEndpoint("/room", "")
			ep.SendQueue = 1024
			srv := gatewaytest.Start(b, &config.Config{Endpoints: []config.Endpoint{ep}}, map[string]gateway.Service{"/room": roomService{h}}, nil)
			conns, err := load.DialAll(context.Background(), &load.Dialer{}, members, 16, func(int) string { return srv.URL("/room") }, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { load.CloseAll(conns) })
			for h.Count("room") < members {
				time.Sleep(time.Millisecond)
			}
			var got atomic.Int64
			for _, c := range conns {
				go func() {
					for {
						if _, err := c.Read(); err != nil {
							return
						}
						got.Add(1)
					}
				}()
			}
			frame := wsproto.FrameString(ws.OpText, "a message of about sixty-four bytes, the size of a chat line..")
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				h.Broadcast("room", frame, nil)
				for want := int64(i+1) * int64(members); got.Load() < want; {
					time.Sleep(10 * time.Microsecond)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*members), "ns/delivery")
		})
	}
}
