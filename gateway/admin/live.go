package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/moongate/moongate/gateway/wsproto"
)

// How /admin/live pushes: it looks for a change every checkEvery, pushes
// the snapshot when it changed and at least every pushEvery, and closes a
// client that has not taken a snapshot within Options.LiveWriteTimeout
// (defaultWriteTimeout). One snapshot
// at most is in flight per client: nothing queues behind a slow one.
const (
	checkEvery          = 200 * time.Millisecond
	pushEvery           = time.Second
	defaultWriteTimeout = 5 * time.Second
	// maxClientFrame bounds a frame from the page (it sends none but
	// control frames); past it the connection is closed.
	maxClientFrame = 4096
)

// serveLive upgrades r and pushes snapshots until the client leaves, is
// too slow, or the console's context ends (then it closes with 1001).
func (c *Console) serveLive(w http.ResponseWriter, r *http.Request) {
	if c.live.Add(1) > MaxLiveClients {
		c.live.Add(-1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many admin consoles open", http.StatusServiceUnavailable)
		return
	}
	defer c.live.Add(-1)
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return // the upgrader has answered
	}
	defer conn.Close()
	conn.SetDeadline(time.Time{})
	lc := &liveConn{conn: conn, gone: make(chan struct{}), timeout: c.opts.LiveWriteTimeout}
	go lc.read(rw.Reader)
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	var last []byte
	var sentAt time.Time
	for {
		snap := c.Snapshot()
		at := snap.Time
		snap.Time = time.Time{} // not a change
		body, err := json.Marshal(snap)
		if err != nil {
			c.opts.Log.Error("admin: encoding a snapshot", "err", err.Error())
			return
		}
		if !bytes.Equal(body, last) || time.Since(sentAt) >= pushEvery {
			snap.Time = at
			msg, _ := json.Marshal(snap)
			if err := lc.write(wsproto.Frame(ws.OpText, msg)); err != nil {
				return // slow or gone
			}
			last, sentAt = body, time.Now()
		}
		select {
		case <-tick.C:
		case <-lc.gone:
			return
		case <-c.ctx.Done():
			lc.write(wsproto.CloseFrame(ws.StatusGoingAway, "server shutting down"))
			return
		}
	}
}

// liveConn is one /admin/live connection: writes go one at a time, each
// within timeout; gone is closed when the reading ends.
type liveConn struct {
	conn    net.Conn
	timeout time.Duration
	mu      sync.Mutex
	gone    chan struct{}
}

func (lc *liveConn) write(frame []byte) error {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.conn.SetWriteDeadline(time.Now().Add(lc.timeout))
	_, err := lc.conn.Write(frame)
	return err
}

// read takes the client's frames: a ping is answered, a close echoed,
// data discarded; it ends (closing gone) at a close, an error or a frame
// past maxClientFrame.
func (lc *liveConn) read(br *bufio.Reader) {
	defer close(lc.gone)
	for {
		h, err := ws.ReadHeader(br)
		if err != nil || h.Length > maxClientFrame || !h.Masked {
			return
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		ws.Cipher(payload, h.Mask, 0)
		switch h.OpCode {
		case ws.OpPing:
			if lc.write(wsproto.Frame(ws.OpPong, payload)) != nil {
				return
			}
		case ws.OpClose:
			code := ws.StatusNormalClosure
			if len(payload) >= 2 {
				code, _ = ws.ParseCloseFrameData(payload)
			}
			lc.write(wsproto.CloseFrame(code, ""))
			return
		}
	}
}
