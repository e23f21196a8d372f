package scripting

import (
	"github.com/moongate/moongate/gateway/cluster"
	"github.com/moongate/moongate/gateway/db"
)

// Option configures a Service beyond its endpoint's settings: what the
// gateway lends it.
type Option func(*Service)

// Databases finds an open database by its configured name. The gateway's
// set of pools implements it (and may swap a pool on a config reload, so
// a service looks a database up at each call rather than keeping it).
type Databases interface {
	Get(name string) (db.DB, bool)
}

// WithDatabases lends the service the gateway's databases; its script may
// use those its endpoint lists (config.Endpoint.Databases).
func WithDatabases(dbs Databases) Option {
	return func(s *Service) { s.databases = dbs }
}

// WithCluster makes the service one of a cluster's: its store (and, as
// the cluster grows, its rooms) are shared with the same endpoint on the
// other nodes through n. Without it the service keeps everything in
// process.
func WithCluster(n *cluster.Node) Option {
	return func(s *Service) { s.cluster = n }
}
