package load

import (
	"bytes"
	"context"
	"crypto/rand"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RoomConfig is a room load: members in rooms, and publishers whose every
// message each member of its room must receive once.
type RoomConfig struct {
	URL string
	// URLs, when given, spread the connections over several servers (the
	// nodes of a cluster): connection i dials URLs[i % len(URLs)].
	URLs  []string
	Proto Protocol
	// Members are the connections that receive (and are counted).
	Members int
	// Rooms spreads the members (and publishers) over this many rooms.
	Rooms int
	// Publishers are extra connections, one per room in turn, that
	// publish; with EveryonePublishes the members publish instead.
	Publishers        int
	EveryonePublishes bool
	// Rate is messages published per second, all publishers together.
	Rate     float64
	Size     int // published text bytes (at least 20)
	Parallel int // connections dialed (and joined) at once
	// Drain is how long a round waits for deliveries still in flight
	// before counting them lost; 0: 5 s.
	Drain time.Duration
	// Progress, if not nil, is called as connections join.
	Progress func(joined int)
}

// Rooms is a room load with its connections open and joined.
type Rooms struct {
	cfg        RoomConfig
	mode       string
	conns      []*Conn
	roomOf     []string
	publishers []int
	counted    int   // conns[:counted] are the measured members
	members    []int // measured members per room index
	stats      *Stats

	round     atomic.Int64 // the round being run; deliveries of others are ignored
	delivered atomic.Int64 // this round's measured deliveries
	closing   atomic.Bool
	readers   sync.WaitGroup
	frames    atomic.Int64 // every frame read, of any kind (see Settle)
}

// Settle waits until the connections have read nothing for quiet (what
// joining set off, such as a chat's presence events to every member, has
// been delivered), or until limit; it reports whether they went quiet.
func (r *Rooms) Settle(quiet, limit time.Duration) bool {
	end := time.Now().Add(limit)
	last, since := r.frames.Load(), time.Now()
	for time.Now().Before(end) {
		time.Sleep(quiet / 10)
		if n := r.frames.Load(); n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return true
		}
	}
	return false
}

// NewRooms opens and joins every connection of cfg; mode names the load
// in its result ("fanout" or "chat").
func NewRooms(ctx context.Context, d *Dialer, mode string, cfg RoomConfig) (*Rooms, error) {
	cfg.Rooms = max(cfg.Rooms, 1)
	cfg.Size = max(cfg.Size, 20)
	if cfg.Drain <= 0 {
		cfg.Drain = defaultDrain
	}
	n := cfg.Members
	if !cfg.EveryonePublishes {
		n += cfg.Publishers
	}
	r := &Rooms{cfg: cfg, mode: mode, counted: cfg.Members, members: make([]int, cfg.Rooms), stats: newStats()}
	r.roomOf = make([]string, n)
	for i := range n {
		k := i % cfg.Rooms
		if i >= cfg.Members {
			k = (i - cfg.Members) % cfg.Rooms
			r.publishers = append(r.publishers, i)
		} else {
			r.members[k]++
			if cfg.EveryonePublishes {
				r.publishers = append(r.publishers, i)
			}
		}
		r.roomOf[i] = "room" + strconv.Itoa(k)
	}
	prefix := randomNick()
	// Each connection is read from the moment it has joined: what the
	// later joins set off (a chat's presence events) must not pile up
	// unread while the rest dial, or the server rightly drops it as slow.
	conns, err := DialAll(ctx, d, n, max(cfg.Parallel, 1),
		func(i int) string { return cfg.Proto.URL(cfg.urlOf(i), r.roomOf[i]) },
		func(i int, c *Conn) error {
			if err := cfg.Proto.Join(c, prefix+strconv.Itoa(i), r.roomOf[i]); err != nil {
				return err
			}
			r.readers.Add(1)
			go func() {
				defer r.readers.Done()
				r.read(i, c)
			}()
			return nil
		},
		cfg.Progress)
	if err != nil {
		r.closing.Store(true)
		r.readers.Wait() // DialAll closed the connections
		return nil, err
	}
	r.conns = conns
	return r, nil
}

// urlOf returns the URL connection i dials.
func (cfg RoomConfig) urlOf(i int) string {
	if len(cfg.URLs) > 0 {
		return cfg.URLs[i%len(cfg.URLs)]
	}
	return cfg.URL
}

// randomNick returns a short random prefix, so that the nicks of two loads
// on one server do not collide.
func randomNick() string {
	b := make([]byte, 4)
	rand.Read(b)
	for i := range b {
		b[i] = 'a' + b[i]%26
	}
	return string(b)
}

// Stats returns the running counters.
func (r *Rooms) Stats() *Stats { return r.stats }

// Result returns the totals of every round so far.
func (r *Rooms) Result() Result { return r.stats.result(r.mode, r.cfg.URL, len(r.conns)) }

// Close closes every connection and waits for the readers.
func (r *Rooms) Close() {
	r.closing.Store(true)
	CloseAll(r.conns)
	r.readers.Wait()
}

// read receives on connection i until it closes, measuring the
// deliveries of the current round to counted members.
func (r *Rooms) read(i int, c *Conn) {
	for {
		p, err := c.Read()
		if err != nil {
			if !r.closing.Load() {
				r.stats.Errors.Add(1)
			}
			return
		}
		r.frames.Add(1)
		if r.cfg.Proto.IsError(p) {
			r.stats.Errors.Add(1)
			continue
		}
		text, ok := r.cfg.Proto.Delivery(p)
		if !ok || i >= r.counted {
			continue
		}
		sent, round, ok := parseText(text)
		if !ok || round != r.round.Load() {
			continue
		}
		r.stats.Hist.Record(i, time.Since(sent))
		r.stats.Received.Add(1)
		r.delivered.Add(1)
	}
}

// Run publishes for d, then waits for every delivery (or the drain time).
func (r *Rooms) Run(ctx context.Context, d time.Duration) {
	round := r.round.Add(1)
	r.delivered.Store(0)
	var expected atomic.Int64
	deadline := time.Now().Add(d)
	perPublisher := r.cfg.Rate / float64(len(r.publishers))
	var wg sync.WaitGroup
	for k, i := range r.publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pace := newPacer(perPublisher, float64(k)/float64(len(r.publishers)))
			room := r.roomOf[i]
			members := int64(r.members[roomIndex(room)])
			text := newPayload(r.cfg.Size)
			var msg []byte
			for ctx.Err() == nil {
				due := pace.wait()
				if !due.Before(deadline) {
					return
				}
				stampText(text, due, round)
				msg = r.cfg.Proto.Publish(msg[:0], room, text)
				if err := r.conns[i].WriteText(msg); err != nil {
					r.stats.Errors.Add(1)
					return
				}
				r.stats.Sent.Add(1)
				expected.Add(members)
			}
		}()
	}
	wg.Wait()
	for end := time.Now().Add(r.cfg.Drain); r.delivered.Load() < expected.Load() && time.Now().Before(end); {
		time.Sleep(5 * time.Millisecond)
	}
	r.stats.Lost.Add(max(expected.Load()-r.delivered.Load(), 0))
	r.stats.elapsed.Add(int64(d))
}

func roomIndex(room string) int {
	k, _ := strconv.Atoi(room[len("room"):])
	return k
}

// stampText writes the send time and round at the start of text:
// "<16 hex digits>-<round>-", then filler.
func stampText(text []byte, t time.Time, round int64) {
	putStamp(text, t)
	copy(text[stampLen:], "-"+strconv.FormatInt(round, 10)+"-")
}

// parseText reads what stampText wrote.
func parseText(text []byte) (time.Time, int64, bool) {
	t, ok := readStamp(text)
	if !ok || len(text) < stampLen+3 || text[stampLen] != '-' {
		return time.Time{}, 0, false
	}
	rest := text[stampLen+1:]
	j := bytes.IndexByte(rest, '-')
	if j < 0 {
		return time.Time{}, 0, false
	}
	round, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return t, round, err == nil
}
