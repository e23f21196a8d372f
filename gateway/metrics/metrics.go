// Package metrics holds the gateway's Prometheus collectors: one registry per
// gateway, and per-endpoint handles with the endpoint label already applied so
// the hot path only does atomic adds.
package metrics

import (
	"net/http"
	"time"

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
	dbCalls        *prometheus.CounterVec
	dbSeconds      *prometheus.HistogramVec
	httpCalls      *prometheus.CounterVec
	httpSeconds    *prometheus.HistogramVec
	suspended      *prometheus.GaugeVec
}

// callBuckets are the duration buckets of database and HTTP calls: 0.5 ms
// to about 33 s.
var callBuckets = prometheus.ExponentialBuckets(0.0005, 4, 9)

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
		dbCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "db_calls_total", Help: "Database calls made by services, by database and result (ok or error)."},
			[]string{"endpoint", "database", "result"}),
		dbSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace,
			Name: "db_call_duration_seconds", Help: "Time a database call took, by database.",
			Buckets: callBuckets}, []string{"endpoint", "database"}),
		httpCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace,
			Name: "http_calls_total", Help: "Outbound HTTP calls made by services, by host and result (ok or error); " +
				"calls refused by the allow-list have host \"(refused)\"."},
			[]string{"endpoint", "host", "result"}),
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace,
			Name: "http_call_duration_seconds", Help: "Time an outbound HTTP call took, by host.",
			Buckets: callBuckets}, []string{"endpoint", "host"}),
		suspended: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace,
			Name: "suspended_handlers", Help: "Handlers waiting now for a database or HTTP call to end."}, perEndpoint),
	}
	m.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.connections, m.refused, m.messagesIn, m.messagesOut, m.bytesIn, m.bytesOut,
		m.queueDrops, m.slowCloses, m.scriptErrors, m.handlerSeconds, m.reloads,
		m.dbCalls, m.dbSeconds, m.httpCalls, m.httpSeconds, m.suspended)
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
		Suspended:    m.suspended.WithLabelValues(path),
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
	// Suspended is the number of this endpoint's handlers waiting for a
	// database or HTTP call (incremented when one yields, decremented when
	// it resumes).
	Suspended prometheus.Gauge
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

// DBCall counts one call to the named database and observes how long it
// took; err nil is result "ok", anything else "error".
func (e *Endpoint) DBCall(database string, took time.Duration, err error) {
	e.metrics.dbCalls.WithLabelValues(e.path, database, result(err)).Inc()
	e.metrics.dbSeconds.WithLabelValues(e.path, database).Observe(took.Seconds())
}

// HTTPCall counts one outbound HTTP call to host and observes how long it
// took; err nil is result "ok", anything else "error". Its signature is
// that of outbound.Observer, so e.HTTPCall can be given to
// outbound.WithObserver. Hosts come from the endpoint's allow-list (refused
// calls are reported as "(refused)"), which keeps the label bounded.
func (e *Endpoint) HTTPCall(host string, took time.Duration, err error) {
	e.metrics.httpCalls.WithLabelValues(e.path, host, result(err)).Inc()
	e.metrics.httpSeconds.WithLabelValues(e.path, host).Observe(took.Seconds())
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// Discard returns endpoint collectors registered nowhere, for code run
// outside a gateway (tests, benchmarks, `moongate check`).
func Discard() *Endpoint { return New().Endpoint("") }
