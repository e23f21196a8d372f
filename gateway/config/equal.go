package config

import (
	"reflect"
	"slices"
	"strings"
)

// Equal reports whether e and o configure the same endpoint: every field
// (the databases it may use and its http section included) but Line, since
// where an endpoint stands in the file changes nothing it does (a comment
// added above it must not restart it).
func (e Endpoint) Equal(o Endpoint) bool {
	e.Line, o.Line = 0, 0
	return reflect.DeepEqual(e, o)
}

// Equal reports whether c and o configure the same gateway: every field
// but the line numbers of endpoints, static folders and databases.
func (c *Config) Equal(o *Config) bool {
	return reflect.DeepEqual(c.withoutLines(), o.withoutLines())
}

// withoutLines returns a copy of c with every Line zero.
func (c *Config) withoutLines() Config {
	out := *c
	out.Endpoints = slices.Clone(c.Endpoints)
	for i := range out.Endpoints {
		out.Endpoints[i].Line = 0
	}
	out.Static = slices.Clone(c.Static)
	for i := range out.Static {
		out.Static[i].Line = 0
	}
	out.Databases = databasesWithoutLines(c.Databases)
	out.Cluster = c.Cluster.withoutLine()
	return out
}

// SameCluster reports whether a and b join the same cluster as the same
// node (a cluster section moved in the file is the same).
func SameCluster(a, b *Config) bool {
	return reflect.DeepEqual(a.Cluster.withoutLine(), b.Cluster.withoutLine())
}

// withoutLine returns a copy of c with Line zero; nil for nil.
func (c *Cluster) withoutLine() *Cluster {
	if c == nil {
		return nil
	}
	out := *c
	out.Line = 0
	return &out
}

// SameDatabases reports whether a and b declare the same databases with
// the same settings, whatever their order and lines in the file: when
// they do, a config reload leaves the database pools alone. (A dsn_env
// is compared by the variable's name; its value is read when a pool is
// opened.)
func SameDatabases(a, b *Config) bool {
	return reflect.DeepEqual(databasesWithoutLines(a.Databases), databasesWithoutLines(b.Databases))
}

// databasesWithoutLines returns dbs sorted by name with every Line zero;
// nil when there are none.
func databasesWithoutLines(dbs []Database) []Database {
	if len(dbs) == 0 {
		return nil
	}
	out := slices.Clone(dbs)
	for i := range out {
		out[i].Line = 0
	}
	slices.SortFunc(out, func(x, y Database) int { return strings.Compare(x.Name, y.Name) })
	return out
}
