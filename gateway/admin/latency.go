package admin

import (
	"log/slog"
	"math"
	"slices"
	"strings"

	"github.com/moongate/moongate/gateway/metrics"
	dto "github.com/prometheus/client_model/go"
)

// handlerHistogram is the metric latencies reads.
const handlerHistogram = "moongate_handler_duration_seconds"

// latencies returns each endpoint's handler latencies, by handler name,
// from m's registry.
func latencies(m *metrics.Metrics, log *slog.Logger) map[string][]Latency {
	out := map[string][]Latency{}
	if m == nil {
		return out
	}
	families, err := m.Registry().Gather()
	if err != nil {
		log.Warn("admin: reading the metrics", "err", err.Error())
	}
	for _, f := range families {
		if f.GetName() != handlerHistogram {
			continue
		}
		for _, metric := range f.GetMetric() {
			h := metric.GetHistogram()
			if h == nil || h.GetSampleCount() == 0 {
				continue
			}
			var endpoint, handler string
			for _, l := range metric.GetLabel() {
				switch l.GetName() {
				case "endpoint":
					endpoint = l.GetValue()
				case "handler":
					handler = l.GetValue()
				}
			}
			n := h.GetSampleCount()
			out[endpoint] = append(out[endpoint], Latency{
				Handler: handler,
				Calls:   n,
				MeanMS:  ms(h.GetSampleSum() / float64(n)),
				P50MS:   ms(quantile(h, 0.5)),
				P99MS:   ms(quantile(h, 0.99)),
			})
		}
	}
	for _, l := range out {
		slices.SortFunc(l, func(a, b Latency) int { return strings.Compare(a.Handler, b.Handler) })
	}
	return out
}

// quantile returns the upper bound of the bucket the q quantile falls in
// (the largest finite bound when it falls past them all).
func quantile(h *dto.Histogram, q float64) float64 {
	want := uint64(math.Ceil(q * float64(h.GetSampleCount())))
	last := 0.0
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			break
		}
		last = b.GetUpperBound()
		if b.GetCumulativeCount() >= want {
			return last
		}
	}
	return last
}

// ms converts seconds to milliseconds, rounded to a microsecond.
func ms(seconds float64) float64 { return math.Round(seconds*1e6) / 1e3 }
