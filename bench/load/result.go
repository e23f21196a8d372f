package load

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// Stats are a load's running counters, added to by every round it runs.
type Stats struct {
	Sent     atomic.Int64 // messages written
	Received atomic.Int64 // messages (or deliveries) received and measured
	Lost     atomic.Int64 // expected but never received
	Errors   atomic.Int64 // failed writes, reads and error replies
	elapsed  atomic.Int64 // nanoseconds of load, over every round
	Hist     *Histogram
}

func newStats() *Stats { return &Stats{Hist: NewHistogram()} }

// Result is what one load measured, ready to print or encode as JSON.
type Result struct {
	Mode     string  `json:"mode"`
	Target   string  `json:"target"`
	Conns    int     `json:"conns"`
	Seconds  float64 `json:"seconds"`
	Sent     int64   `json:"sent"`
	Received int64   `json:"received"`
	Lost     int64   `json:"lost"`
	Errors   int64   `json:"errors"`
	// PerSecond is messages received (deliveries, for fan-out) per second.
	PerSecond float64 `json:"per_second"`
	Latency   Latency `json:"latency"`
	// RSS figures, for idle runs given the server's PID: resident memory
	// before dialing and with every connection open, in bytes.
	RSSBefore  int64   `json:"rss_before,omitempty"`
	RSSAfter   int64   `json:"rss_after,omitempty"`
	RSSPerConn float64 `json:"rss_per_conn,omitempty"`
}

// result summarises s.
func (s *Stats) result(mode, target string, conns int) Result {
	secs := time.Duration(s.elapsed.Load()).Seconds()
	r := Result{
		Mode: mode, Target: target, Conns: conns, Seconds: secs,
		Sent: s.Sent.Load(), Received: s.Received.Load(), Lost: s.Lost.Load(), Errors: s.Errors.Load(),
		Latency: s.Hist.Summary(),
	}
	if secs > 0 {
		r.PerSecond = float64(r.Received) / secs
	}
	return r
}

// Print writes r as one readable paragraph.
func (r Result) Print(w io.Writer) {
	fmt.Fprintf(w, "%s %s: %d conns, %.1f s\n", r.Mode, r.Target, r.Conns, r.Seconds)
	if r.RSSAfter > 0 {
		fmt.Fprintf(w, "  rss %.1f MiB -> %.1f MiB: %.2f KiB per connection\n",
			float64(r.RSSBefore)/(1<<20), float64(r.RSSAfter)/(1<<20), r.RSSPerConn/1024)
	}
	if r.Latency.Count > 0 {
		fmt.Fprintf(w, "  %.0f msgs/s; latency p50 %s p90 %s p99 %s max %s\n",
			r.PerSecond, ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.Max))
	}
	fmt.Fprintf(w, "  sent %d, received %d, lost %d, errors %d\n", r.Sent, r.Received, r.Lost, r.Errors)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// Ratio compares two results of the same load: A's figure over B's.
type Ratio struct {
	PerSecond  float64 `json:"per_second"`
	P99        float64 `json:"p99"`
	RSSPerConn float64 `json:"rss_per_conn,omitempty"`
}

// Compare returns a's figures as ratios of b's.
func Compare(a, b Result) Ratio {
	div := func(x, y float64) float64 {
		if y == 0 {
			return 0
		}
		return x / y
	}
	return Ratio{
		PerSecond:  div(a.PerSecond, b.PerSecond),
		P99:        div(float64(a.Latency.P99), float64(b.Latency.P99)),
		RSSPerConn: div(a.RSSPerConn, b.RSSPerConn),
	}
}

// Print writes the ratio as one line.
func (r Ratio) Print(w io.Writer) {
	fmt.Fprintf(w, "ratio A/B: throughput %.3f, p99 latency %.3f", r.PerSecond, r.P99)
	if r.RSSPerConn > 0 {
		fmt.Fprintf(w, ", rss per connection %.3f", r.RSSPerConn)
	}
	fmt.Fprintln(w)
}
