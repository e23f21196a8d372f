package config

import (
	"reflect"
	"slices"
)

// Equal reports whether e and o configure the same endpoint: every field
// but Line, since where an endpoint stands in the file changes nothing it
// does (a comment added above it must not restart it).
func (e Endpoint) Equal(o Endpoint) bool {
	e.Line, o.Line = 0, 0
	return reflect.DeepEqual(e, o)
}

// Equal reports whether c and o configure the same gateway: every field
// but the line numbers of endpoints and static folders.
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
	return out
}
