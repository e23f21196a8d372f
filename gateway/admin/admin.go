// Package admin is the gateway's admin console: a page at /admin/ (plain
// files embedded in the binary), the JSON snapshot it shows at
// /admin/state, and /admin/live, a WebSocket that pushes that snapshot
// when it changes and at least every second. The gateway serves it to
// loopback clients or with the admin token (gateway.Server.HandleAdmin).
//
// The console knows nothing about Lua: what it needs of the scripts is the
// Scripts interface, which the binary implements over the script runtime.
package admin

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moongate/moongate/gateway/hub"
	"github.com/moongate/moongate/gateway/logring"
	"github.com/moongate/moongate/gateway/metrics"
)

//go:embed www
var www embed.FS

// Bounds of one snapshot, so that its size does not grow with the load.
const (
	// MaxLogLines is how many of the most recent log lines a snapshot holds.
	MaxLogLines = 100
	// MaxErrors is how many of the most recent errors a snapshot holds.
	MaxErrors = 50
	// MaxRooms is how many rooms of an endpoint a snapshot lists (by name).
	MaxRooms = 200
	// MaxMembers is how many members of a room a snapshot lists.
	MaxMembers = 50
	// MaxLiveClients is how many /admin/live connections may be open at
	// once; past it an upgrade is answered 503.
	MaxLiveClients = 16
)

// Scripts is what the console needs to know of the endpoints' scripts.
type Scripts interface {
	// ScriptStatus returns the config's status and each endpoint's script
	// status, sorted by path (Connections, Rooms and Latency left empty).
	ScriptStatus() (ConfigState, []EndpointState)
	// Hub returns the clients and rooms of an endpoint's service (nil:
	// none).
	Hub(endpoint string) *hub.Hub
}

// Connections counts the live WebSocket connections of each endpoint
// (gateway.Server implements it).
type Connections interface {
	Connections() map[string]int
}

// ConfigState is the config file's status.
type ConfigState struct {
	File        string    `json:"file"`
	LoadedAt    time.Time `json:"loaded_at"`
	Reloads     int       `json:"reloads"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// EndpointState is one endpoint as the console shows it.
type EndpointState struct {
	Path        string    `json:"path"`
	Script      string    `json:"script"`
	Version     string    `json:"version"`
	LoadedAt    time.Time `json:"loaded_at"`
	Reloads     int       `json:"reloads"`
	LastError   string    `json:"last_error,omitempty"` // file:line: message
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Connections int       `json:"connections"`
	Rooms       []Room    `json:"rooms"`
	RoomCount   int       `json:"room_count"` // all rooms, listed or not
	Latency     []Latency `json:"latency"`
}

// Room is one room of an endpoint: its member count and the first
// MaxMembers members.
type Room struct {
	Name    string   `json:"name"`
	Count   int      `json:"count"`
	Members []Member `json:"members"`
}

// Member is a client in a room: its id and, when it has one, the name an
// attribute gives it (nick, name or user).
type Member struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// Latency is how long one handler of an endpoint has taken since the
// gateway started, from the moongate_handler_duration_seconds histogram:
// the mean, and the median and 99th percentile as the upper bound of the
// bucket they fall in.
type Latency struct {
	Handler string  `json:"handler"`
	Calls   uint64  `json:"calls"`
	MeanMS  float64 `json:"mean_ms"`
	P50MS   float64 `json:"p50_ms"`
	P99MS   float64 `json:"p99_ms"`
}

// Snapshot is what the console shows at one moment.
type Snapshot struct {
	Time      time.Time        `json:"time"`
	Config    ConfigState      `json:"config"`
	Endpoints []EndpointState  `json:"endpoints"`
	Errors    []logring.Record `json:"errors"` // the newest last
	Logs      []logring.Record `json:"logs"`   // the newest last
}

// Options are what a console shows and where it gets it from.
type Options struct {
	Scripts     Scripts          // required
	Connections Connections      // nil: no counts
	Metrics     *metrics.Metrics // nil: no latency
	Logs        *logring.Ring    // nil: no log lines
	Log         *slog.Logger     // nil: discarded
	// LiveWriteTimeout is how long a /admin/live client may take to take
	// one snapshot before it is closed as slow (0: 5 s).
	LiveWriteTimeout time.Duration
}

// Console serves the admin console's page, snapshot and live feed.
type Console struct {
	ctx   context.Context
	opts  Options
	files http.Handler
	live  atomic.Int32

	mu       sync.Mutex
	cached   *Snapshot
	cachedAt time.Time
}

// New returns a console that serves until ctx ends; then its live
// connections are closed with 1001.
func New(ctx context.Context, opts Options) *Console {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.LiveWriteTimeout <= 0 {
		opts.LiveWriteTimeout = defaultWriteTimeout
	}
	sub, err := fs.Sub(www, "www")
	if err != nil {
		panic(err) // the embedded folder is part of the binary
	}
	return &Console{ctx: ctx, opts: opts, files: http.StripPrefix("/admin/", http.FileServerFS(sub))}
}

// ServeHTTP serves /admin/ (the page and its files), /admin/state (the
// snapshot as JSON) and /admin/live (the WebSocket); mount it at /admin/.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/admin/state":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(c.Snapshot())
	case "/admin/live":
		c.serveLive(w, r)
	default:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/admin/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		c.files.ServeHTTP(w, r)
	}
}

// LiveClients returns how many /admin/live connections are open.
func (c *Console) LiveClients() int { return int(c.live.Load()) }

// snapshotTTL is how long a snapshot is reused: live clients checking at
// once build it once.
const snapshotTTL = 100 * time.Millisecond

// Snapshot returns what the console shows now.
func (c *Console) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != nil && time.Since(c.cachedAt) < snapshotTTL {
		return *c.cached
	}
	s := c.build()
	c.cached, c.cachedAt = &s, time.Now()
	return s
}

func (c *Console) build() Snapshot {
	cfg, eps := c.opts.Scripts.ScriptStatus()
	snap := Snapshot{Time: time.Now().UTC(), Config: cfg, Endpoints: eps, Errors: []logring.Record{}, Logs: []logring.Record{}}
	var conns map[string]int
	if c.opts.Connections != nil {
		conns = c.opts.Connections.Connections()
	}
	lat := latencies(c.opts.Metrics, c.opts.Log)
	for i := range snap.Endpoints {
		e := &snap.Endpoints[i]
		e.Connections = conns[e.Path]
		e.Latency = lat[e.Path]
		if e.Latency == nil {
			e.Latency = []Latency{}
		}
		e.Rooms, e.RoomCount = rooms(c.opts.Scripts.Hub(e.Path))
	}
	if c.opts.Logs != nil {
		recs := c.opts.Logs.Records()
		for _, r := range recs {
			if isError(r) {
				snap.Errors = append(snap.Errors, r)
			}
		}
		snap.Errors = lastN(snap.Errors, MaxErrors)
		snap.Logs = lastN(recs, MaxLogLines)
	}
	return snap
}

// isError reports whether a log record is an error the console lists
// apart: a script error, a refused reload, anything logged as an error.
func isError(r logring.Record) bool {
	return r.Level == slog.LevelError.String() || strings.Contains(r.Message, "script error")
}

func lastN[T any](s []T, n int) []T {
	if len(s) > n {
		return append([]T(nil), s[len(s)-n:]...)
	}
	return s
}

// rooms lists the rooms of h (the first MaxRooms by name) and how many
// there are.
func rooms(h *hub.Hub) ([]Room, int) {
	out := []Room{}
	if h == nil {
		return out, 0
	}
	infos := h.Rooms()
	for _, info := range infos[:min(len(infos), MaxRooms)] {
		members := h.Members(info.Name)
		room := Room{Name: info.Name, Count: len(members), Members: make([]Member, 0, min(len(members), MaxMembers))}
		for _, m := range members[:min(len(members), MaxMembers)] {
			room.Members = append(room.Members, Member{ID: m.ID(), Name: displayName(m.Attr)})
		}
		out = append(out, room)
	}
	return out, len(infos)
}

// displayName returns the first string attribute of nick, name and user.
func displayName(attr func(string) (any, bool)) string {
	for _, k := range []string{"nick", "name", "user"} {
		if v, ok := attr(k); ok {
			if s, ok := v.(string); ok && s != "" {
				return s
			}
		}
	}
	return ""
}
