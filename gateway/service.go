package gateway

import (
	"context"
	"fmt"

	"github.com/moongate/moongate/gateway/client"
	"github.com/moongate/moongate/gateway/wsproto"
)

// Service implements what an endpoint does with its clients. The gateway
// calls Connect once per upgrade request, then Message for each message in
// order, then Closed once. The Lua runtime implements it for scripts; a Go
// service (a benchmark baseline, a test) implements it the same way.
type Service interface {
	// Connect decides whether c may connect. It runs before the upgrade, so
	// the service can check a token or a header: a *Refusal refuses with its
	// HTTP status, any other error refuses with 500.
	Connect(ctx context.Context, c *client.Client) error
	// Message handles one message from c. It runs on c's reader goroutine
	// and m.Data is only valid during the call. Blocking holds back reading
	// from c (backpressure) and nothing else.
	Message(ctx context.Context, c *client.Client, m wsproto.Message)
	// Closed is called once for every client whose Connect succeeded, after
	// its connection has ended, with how it ended.
	Closed(c *client.Client, how client.Closed)
}

// Flusher is implemented by a Service that handles messages asynchronously.
// Flush returns once every message of c handed to Message before the call
// has been handled (or ctx is done). The gateway calls it before failing a
// connection for a protocol violation, so that the replies to the messages
// before the violation are sent ahead of the close frame.
type Flusher interface {
	Flush(ctx context.Context, c *client.Client)
}

// Refusal is the error a Service returns from Connect to refuse a client
// with an HTTP status and a reason.
type Refusal struct {
	Status int
	Reason string
}

func (r *Refusal) Error() string { return fmt.Sprintf("refused (%d): %s", r.Status, r.Reason) }
