// Package logring keeps the last records a slog logger wrote, in a ring of
// fixed size, for the admin console to show: a slog.Handler that hands each
// record on to the handler it wraps and keeps a copy.
package logring

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// DefaultSize is how many records a ring keeps when New is given no size.
const DefaultSize = 500

// maxValueBytes bounds one attribute's value as kept (a traceback, a long
// error): what is past it is cut and marked.
const maxValueBytes = 4096

// Record is one log record as the ring keeps it: its attributes flattened
// to strings (a group's keys joined with dots).
type Record struct {
	Seq     uint64            `json:"seq"`
	Time    time.Time         `json:"time"`
	Level   string            `json:"level"`
	Message string            `json:"message"`
	Attrs   map[string]string `json:"attrs,omitempty"`
}

// Ring is a bounded buffer of the most recent records; safe for
// concurrent use.
type Ring struct {
	level slog.Leveler
	mu    sync.Mutex
	buf   []Record // len == size once full
	next  int      // where the next record goes once full
	seq   uint64   // records ever kept
	size  int
}

// New returns a ring keeping the last size records (DefaultSize when size
// is not positive) at level or above (nil: every level its handlers let
// through).
func New(size int, level slog.Leveler) *Ring {
	if size <= 0 {
		size = DefaultSize
	}
	return &Ring{size: size, level: level}
}

// Size returns how many records the ring keeps at most.
func (r *Ring) Size() int { return r.size }

// Seq returns how many records the ring has kept since it was made (the
// Seq of the newest); it changes whenever a record is added.
func (r *Ring) Seq() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Records returns the records kept, oldest first.
func (r *Ring) Records() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Record, 0, len(r.buf))
	if len(r.buf) == r.size {
		out = append(out, r.buf[r.next:]...)
		out = append(out, r.buf[:r.next]...)
		return out
	}
	return append(out, r.buf...)
}

func (r *Ring) add(rec Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	rec.Seq = r.seq
	if len(r.buf) < r.size {
		r.buf = append(r.buf, rec)
		return
	}
	r.buf[r.next] = rec
	r.next = (r.next + 1) % r.size
}

// Handler returns a slog.Handler that passes each record to next and
// keeps a copy in the ring. A record next does not take (below its level)
// is not kept either.
func (r *Ring) Handler(next slog.Handler) slog.Handler {
	return &handler{ring: r, next: next}
}

// handler is one view of a ring: the attributes and group given by With
// calls, and the handler it passes records to.
type handler struct {
	ring   *Ring
	next   slog.Handler
	attrs  []slog.Attr // prefixed by their groups already
	prefix string      // the open groups, each followed by "."
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	if h.ring.level == nil || rec.Level >= h.ring.level.Level() {
		kept := Record{Time: rec.Time, Level: rec.Level.String(), Message: rec.Message}
		if n := len(h.attrs) + rec.NumAttrs(); n > 0 {
			kept.Attrs = make(map[string]string, n)
		}
		for _, a := range h.attrs {
			flatten(kept.Attrs, "", a)
		}
		rec.Attrs(func(a slog.Attr) bool {
			flatten(kept.Attrs, h.prefix, a)
			return true
		})
		h.ring.add(kept)
	}
	return h.next.Handle(ctx, rec)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(attrs)
	c.attrs = append([]slog.Attr(nil), h.attrs...)
	for _, a := range attrs {
		if h.prefix != "" {
			a = slog.Attr{Key: h.prefix + a.Key, Value: a.Value}
		}
		c.attrs = append(c.attrs, a)
	}
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.next = h.next.WithGroup(name)
	c.prefix = h.prefix + name + "."
	return &c
}

// flatten puts a into m under prefix+key, a group's attributes under
// their dotted keys, each value cut at maxValueBytes.
func flatten(m map[string]string, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			flatten(m, p, g)
		}
		return
	}
	if a.Key == "" {
		return
	}
	s := v.String()
	if len(s) > maxValueBytes {
		s = s[:maxValueBytes] + "…"
	}
	m[prefix+a.Key] = s
}
