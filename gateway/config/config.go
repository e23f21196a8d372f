// Package config loads Moongate's YAML config strictly: an unknown field, a
// value of the wrong type, a missing script or a duplicate path is reported
// as `file:line: field: message`, all problems at once, and nothing is ever
// silently defaulted because of a typo.
package config

import (
	"runtime"
	"time"
)

// Defaults of the config fields, as documented in docs/config.md.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultShutdownTimeout = 10 * time.Second
	DefaultMaxMessageBytes = 64 << 10
	DefaultSendQueue       = 256
	DefaultSendQueueBytes  = 1 << 20
	DefaultOnFull          = OnFullClose
	DefaultPingInterval    = 30 * time.Second
	DefaultIdleTimeout     = 60 * time.Second
	DefaultMessageTimeout  = 10 * time.Second
	DefaultBudget          = 250 * time.Millisecond
	DefaultInbox           = 1024
	DefaultInboxBytes      = 16 << 20
	DefaultHandlerMemory   = 256 << 20
)

// Config is a whole config file.
type Config struct {
	File            string        // the path it was loaded from
	Listen          string        // host:port to serve on
	ShutdownTimeout time.Duration // how long a graceful shutdown may take
	Endpoints       []Endpoint    // WebSocket endpoints, at least one
	Static          []Static      // folders served over plain HTTP
	Limits          Limits        // connection limits
	TLS             *TLS          // serve https and wss; nil: plain http and ws
	Pprof           bool          // serve /debug/pprof/ to loopback clients
	// AllowedHosts are host names (without port) requests may name in
	// their Host header besides loopback names and the listen host; see
	// docs/config.md for when the Host check applies.
	AllowedHosts []string
	Metrics      Metrics // who may read /metrics
	// Databases are the databases services may use, by name; an
	// endpoint lists the ones its script may reach.
	Databases []Database
	// Cluster joins the gateway to others over Redis; nil: it runs alone.
	Cluster *Cluster
	// ClusterFromFlags: Cluster came from the command line (moongate run
	// -cluster), not the file; a config reload keeps it.
	ClusterFromFlags bool
}

// Database is one item of the top-level `databases:` map.
type Database struct {
	Line    int           // where it is in the file
	Name    string        // the key it is declared under; what scripts name
	Driver  string        // "sqlite" or "postgres"
	DSN     string        // SQLite: a file path, resolved against the config's folder; PostgreSQL: a URL
	DSNEnv  string        // the environment variable holding the DSN, instead of DSN
	Pool    int           // connections in the pool (SQLite: read connections); 0: the driver's default
	Timeout time.Duration // how long one statement may take
}

// DefaultDBTimeout bounds one statement when a database names no timeout.
const DefaultDBTimeout = 5 * time.Second

// HTTP is what an endpoint's script may call over HTTP.
type HTTP struct {
	Allow            []string      // URL prefixes the script may call; empty: none
	Timeout          time.Duration // how long one call may take, redirects included
	MaxResponseBytes int64         // largest response body a call reads
}

// Defaults of an endpoint's `http:` section.
const (
	DefaultHTTPTimeout      = 5 * time.Second
	DefaultMaxResponseBytes = 1 << 20
)

// Metrics says who may read /metrics.
type Metrics struct {
	Expose Expose
}

// Expose is who may read /metrics.
type Expose string

// The metrics.expose choices.
const (
	ExposePublic   Expose = "public"   // anyone who can reach the listener
	ExposeLoopback Expose = "loopback" // clients on this machine, through a loopback or allowed Host
	ExposeOff      Expose = "off"      // nobody: /metrics answers 404
)

// DefaultExpose is who may read /metrics when the config does not say.
const DefaultExpose = ExposeLoopback

// Limits bound the connections the gateway accepts.
type Limits struct {
	MaxConnections   int           // WebSocket connections at once, all endpoints; 0: no limit
	MaxPerIP         int           // WebSocket connections at once from one remote address; 0: no limit
	HandshakeTimeout time.Duration // how long a client may take to send its upgrade request's headers
	// HTTPIdleTimeout closes a keep-alive HTTP connection that sends no
	// new request for this long.
	HTTPIdleTimeout time.Duration
	// MaxHeaderBytes bounds the size of a request's line and headers;
	// a larger request is refused with 431.
	MaxHeaderBytes int64
}

// Default limits.
const (
	DefaultMaxConnections   = 100_000
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultHTTPIdleTimeout  = 15 * time.Second
	DefaultMaxHeaderBytes   = 32 << 10
)

// TLS names the certificate and key a TLS listener serves with.
type TLS struct {
	Cert string // PEM certificate (chain), resolved against the config's folder
	Key  string // PEM private key, resolved likewise
}

// Endpoint maps a URL path to the Lua script that implements its service,
// with the limits of its clients.
type Endpoint struct {
	Line            int           // where the endpoint is in the file
	Path            string        // URL path, e.g. "/echo"
	Script          string        // the script's path, resolved against the config file's folder
	States          int           // Lua states running the script
	MaxMessageBytes int64         // largest message a client may send; larger closes with 1009
	SendQueue       int           // messages queued per client
	SendQueueBytes  int64         // bytes queued per client (frames being written included)
	OnFull          OnFull        // what a full send queue does
	PingInterval    time.Duration // keepalive ping period; 0 turns pings off
	IdleTimeout     time.Duration // close a client that sends nothing for this long
	MessageTimeout  time.Duration // close (1008) a client whose message is not complete this long after it started
	Origins         []string      // allowed Origin values; empty: same-origin and non-browser clients
	Subprotocols    []string      // subprotocols the endpoint speaks, for Sec-WebSocket-Protocol negotiation
	Compression     bool          // accept permessage-deflate (RFC 7692) from clients that offer it
	// CompressionContextTakeover lets clients compress each message with
	// the window of the ones before (RFC 7692 context takeover); the
	// server keeps 32 KiB of window per such connection.
	CompressionContextTakeover bool
	Budget                     time.Duration  // how long one Lua handler call may run
	Inbox                      int            // events queued per Lua state
	InboxBytes                 int64          // bytes of the messages queued per Lua state
	HandlerMemory              int64          // how much one handler call may grow the heap before it is stopped; 0: no limit
	Options                    map[string]any // free-form settings handed to the script as `options`
	Auth                       *Auth          // sign-in with tokens; nil: no sign-in, everyone is a guest
	Databases                  []string       // names of the databases (Config.Databases) the script may use
	HTTP                       HTTP           // what the script may call over HTTP
}

// DefaultSecretEnv is the environment variable that holds the token secret
// when an endpoint's auth names none.
const DefaultSecretEnv = "MOONGATE_JWT_SECRET"

// Auth is how an endpoint signs clients in: an HS256 JWT, given as
// ?token= or an Authorization: Bearer header, verified before the upgrade.
type Auth struct {
	SecretEnv string // environment variable holding the HMAC secret
	Required  bool   // true: clients without a valid token are refused with 401
}

// OnFull says what happens when a client's send queue is full.
type OnFull string

// The on_full policies.
const (
	OnFullClose OnFull = "close" // close the slow client with 1008
	OnFullDrop  OnFull = "drop"  // drop the message and count it
)

// Static serves the files of a folder under a URL prefix.
type Static struct {
	Line   int
	Prefix string // URL prefix, e.g. "/" or "/chat/"
	Dir    string // the folder, resolved against the config file's folder
}

// AutoStates is what `states: auto` resolves to: one state per core.
func AutoStates() int { return runtime.NumCPU() }

// DefaultEndpoint returns an endpoint for path and script with every other
// field at its default, as a config file that names only those two gets.
func DefaultEndpoint(path, script string) Endpoint {
	ep := defaultEndpoint()
	ep.Path, ep.Script = path, script
	return ep
}

func defaultEndpoint() Endpoint {
	return Endpoint{
		States:          AutoStates(),
		MaxMessageBytes: DefaultMaxMessageBytes,
		SendQueue:       DefaultSendQueue,
		SendQueueBytes:  DefaultSendQueueBytes,
		OnFull:          DefaultOnFull,
		PingInterval:    DefaultPingInterval,
		IdleTimeout:     DefaultIdleTimeout,
		MessageTimeout:  DefaultMessageTimeout,
		Budget:          DefaultBudget,
		Inbox:           DefaultInbox,
		InboxBytes:      DefaultInboxBytes,
		HandlerMemory:   DefaultHandlerMemory,
		Options:         map[string]any{},
		HTTP:            HTTP{Timeout: DefaultHTTPTimeout, MaxResponseBytes: DefaultMaxResponseBytes},
	}
}
