// Package baseline is the yardstick for Moongate's performance figures: a
// bare WebSocket echo server and room broadcast written directly on
// github.com/gobwas/ws, with no scripting and no queues. Benchmarks and the
// load tool (cmd/moongate-bench) run the same load against it and against
// Moongate in the same run and report the ratio.
package baseline

import (
	"net/http"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Echo is an http.Handler that upgrades every request and sends each
// message back to its sender with the same opcode, from the connection's
// own goroutine. Replies are buffered and flushed when no more input is
// already buffered, so a client with several messages in flight gets its
// replies in one write. Wait waits for every connection it serves to end.
type Echo struct {
	wg sync.WaitGroup
}

// ServeHTTP upgrades the request and echoes until the client goes away.
func (e *Echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	e.wg.Add(1)
	defer e.wg.Done()
	defer conn.Close()
	out := rw.Writer
	for {
		data, op, err := wsutil.ReadClientData(rw)
		if err != nil {
			return
		}
		if err := wsutil.WriteServerMessage(out, op, data); err != nil {
			return
		}
		if rw.Reader.Buffered() > 0 {
			continue // more to answer first: one write for all of them
		}
		if err := out.Flush(); err != nil {
			return
		}
	}
}

// Wait blocks until every connection the handler served has ended.
func (e *Echo) Wait() { e.wg.Wait() }
