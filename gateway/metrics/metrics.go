// Package metrics holds the gateway's Prometheus collectors: one registry per
// gateway, and per-endpoint handles with the endpoint label already applied so
// the hot path only does atomic adds.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "moongate"

// Metrics is the set of collectors of one gateway process.
type Metrics struct {
	registry       *prometheus.Registry
	connections    *prometheus.GaugeVec
	refused        *prometheus.CounterVec
	messagesIn     *prometheus.CounterVec
	messagesOut    *prometheus.CounterVec
	bytesIn        *prometheus.CounterVec
	bytesOut       *prometheus.CounterVec
	queueDrops     *prometheus.CounterVec
	slowCloses     *prometheus.CounterVec
	scriptErrors   *prometheus.CounterVec
	handlerSeconds *prometheus.HistogramVec
	reloads        *prometheus.CounterVec
}

// New returns collectors registered in a fresh registry, together with the
// Go runtime and process collectors.
func New() *Metrics {
	perEndpoint := []string{"endpoint"}
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace,
			Name: "connections", Help: "WebSocket connections open now."}, perEndpoint),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "connections_refused_total", Help: "Upgrade requests refused, by reason."}, []string{"endpoint", "reason"}),
		messagesIn:  counter("messages_in_total", "Messages received from clients."),
		messagesOut: counter("messages_out_total", "Frames written to clients (data and close)."),
		bytesIn:     counter("bytes_in_total", "Payload bytes received from clients."),
		bytesOut:    counter("bytes_out_total", "Bytes written to clients, frame headers included."),
		queueDrops: counter("send_queue_drops_total",
			"Messages dropped because a client's send queue was full (on_full: drop)."),
		slowCloses: counter("slow_client_closes_total",
			"Clients closed with 1008 because their send queue was full (on_full: close)."),
		scriptErrors: counter("script_errors_total", "Errors raised by service handlers, budget overruns included."),
		handlerSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace,
			Name: "handler_duration_seconds", Help: "Time a service handler call took.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 4, 10)}, []string{"endpoint", "handler"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "script_reloads_total", Help: "Script reloads, by result (ok or error)."}, []string{"endpoint", "result"}),
	}
	m.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.connections, m.refused, m.messagesIn, m.messagesOut, m.bytesIn, m.bytesOut,
		m.queueDrops, m.slowCloses, m.scriptErrors, m.handlerSeconds, m.reloads)
	return m
}

func counter(name, help string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help},
		[]string{"endpoint"})
}

// Registry returns the registry the collectors live in.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// Endpoint returns the collectors of one endpoint, labelled with its path.
func (m *Metrics) Endpoint(path string) *Endpoint {
	return &Endpoint{
		metrics:      m,
		path:         path,
		Connections:  m.connections.WithLabelValues(path),
		MessagesIn:   m.messagesIn.WithLabelValues(path),
		MessagesOut:  m.messagesOut.WithLabelValues(path),
		BytesIn:      m.bytesIn.WithLabelValues(path),
		BytesOut:     m.bytesOut.WithLabelValues(path),
		QueueDrops:   m.queueDrops.WithLabelValues(path),
		SlowCloses:   m.slowCloses.WithLabelValues(path),
		ScriptErrors: m.scriptErrors.WithLabelValues(path),
	}
}

// Endpoint is the collectors of one endpoint.
type Endpoint struct {
	metrics *Metrics
	path    string

	Connections  prometheus.Gauge
	MessagesIn   prometheus.Counter
	MessagesOut  prometheus.Counter
	BytesIn      prometheus.Counter
	BytesOut     prometheus.Counter
	QueueDrops   prometheus.Counter
	SlowCloses   prometheus.Counter
	ScriptErrors prometheus.Counter
}

// Refused counts one refused upgrade request with a short reason label
// (such as "origin", "service", "handshake").
func (e *Endpoint) Refused(reason string) {
	e.metrics.refused.WithLabelValues(e.path, reason).Inc()
}

// Handler returns the duration histogram of one handler (connect, message,
// close, timer, ...) of this endpoint.
func (e *Endpoint) Handler(name string) prometheus.Observer {
	return e.metrics.handlerSeconds.WithLabelValues(e.path, name)
}

// Reloaded counts a script reload that succeeded (ok) or was refused.
func (e *Endpoint) Reloaded(ok bool) {
	result := "ok"
	if !ok {
		result = "error"
	}
	e.metrics.reloads.WithLabelValues(e.path, result).Inc()
}

// Discard returns endpoint collectors registered nowhere, for code run
// outside a gateway (tests, benchmarks, `moongate check`).
func Discard() *Endpoint { return New().Endpoint("") }
