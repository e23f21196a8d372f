package baseline

import (
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Rooms is an http.Handler for a bare room broadcast: a client joins the
// room named by the request's "room" query parameter ("lobby" when absent),
// and every message a member sends is written to every member, sender
// included. Once a client is a member it gets the text "joined". The
// frame is encoded once per message and the publisher's own
// goroutine writes it to each member in turn; there is no queue.
type Rooms struct {
	mu    sync.Mutex
	rooms map[string]map[*member]struct{}
	wg    sync.WaitGroup
}

// joined is what a client gets once it is a member of its room.
var joined = []byte("joined")

// member is one connection in a room; mu serialises writes to it.
type member struct {
	mu   sync.Mutex
	conn net.Conn
}

// ServeHTTP upgrades the request, joins the room and broadcasts what the
// client sends until it goes away.
func (rs *Rooms) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	rs.wg.Add(1)
	defer rs.wg.Done()
	defer conn.Close()
	room := r.URL.Query().Get("room")
	if room == "" {
		room = "lobby"
	}
	m := &member{conn: conn}
	rs.join(room, m)
	defer rs.leave(room, m)
	m.mu.Lock()
	err = wsutil.WriteServerText(conn, joined)
	m.mu.Unlock()
	if err != nil {
		return
	}
	for {
		data, op, err := wsutil.ReadClientData(rw)
		if err != nil {
			return
		}
		frame, err := ws.CompileFrame(ws.NewFrame(op, true, data))
		if err != nil {
			return
		}
		for _, to := range rs.members(room) {
			to.mu.Lock()
			to.conn.Write(frame)
			to.mu.Unlock()
		}
	}
}

func (rs *Rooms) join(room string, m *member) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.rooms == nil {
		rs.rooms = make(map[string]map[*member]struct{})
	}
	if rs.rooms[room] == nil {
		rs.rooms[room] = make(map[*member]struct{})
	}
	rs.rooms[room][m] = struct{}{}
}

func (rs *Rooms) leave(room string, m *member) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	delete(rs.rooms[room], m)
	if len(rs.rooms[room]) == 0 {
		delete(rs.rooms, room)
	}
}

// members returns a snapshot of the room's members.
func (rs *Rooms) members(room string) []*member {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	out := make([]*member, 0, len(rs.rooms[room]))
	for m := range rs.rooms[room] {
		out = append(out, m)
	}
	return out
}

// Wait blocks until every connection the handler served has ended.
func (rs *Rooms) Wait() { rs.wg.Wait() }

// Mux returns the baseline's routes: the echo at /echo and the room
// broadcast at /room.
func Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/echo", &Echo{})
	mux.Handle("/room", &Rooms{})
	return mux
}

// Start serves Mux on a loopback port until the test or benchmark ends and
// returns its ws:// address (add /echo or /room).
func Start(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: Mux()}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	return "ws://" + ln.Addr().String()
}
