package load

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// histShards spreads concurrent recorders over this many locks.
const histShards = 16

// Histogram records latencies from 1 µs to 60 s at three significant
// digits. It is safe for concurrent use.
type Histogram struct {
	shards [histShards]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
	}
}

// NewHistogram returns an empty Histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	for i := range h.shards {
		h.shards[i].h = hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
	}
	return h
}

// Record adds one latency; key spreads recorders over the shards (a
// connection's index, say).
func (h *Histogram) Record(key int, d time.Duration) {
	s := &h.shards[uint(key)%histShards]
	us := max(d.Microseconds(), 1)
	s.mu.Lock()
	s.h.RecordValue(min(us, s.h.HighestTrackableValue()))
	s.mu.Unlock()
}

// Latency summarises a Histogram.
type Latency struct {
	Count int64         `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summary returns the quantiles of everything recorded.
func (h *Histogram) Summary() Latency {
	all := hdrhistogram.New(1, int64(time.Minute/time.Microsecond), 3)
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		all.Merge(s.h)
		s.mu.Unlock()
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return Latency{
		Count: all.TotalCount(),
		P50:   us(all.ValueAtQuantile(50)),
		P90:   us(all.ValueAtQuantile(90)),
		P99:   us(all.ValueAtQuantile(99)),
		Max:   us(all.Max()),
	}
}
