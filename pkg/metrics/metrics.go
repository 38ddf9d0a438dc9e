// Package metrics defines the node's Prometheus collectors on a registry of
// its own (no global state, so several nodes can live in one test process).
// No label carries a clientId or a groupName: cardinality stays bounded.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector of one node.
type Metrics struct {
	Registry *prometheus.Registry

	Connections        *prometheus.GaugeVec   // system
	Connects           prometheus.Counter     //
	Disconnects        *prometheus.CounterVec // reason
	ConnectsRefused    *prometheus.CounterVec // reason
	MessagesPushed     prometheus.Counter
	MessagesDropped    prometheus.Counter
	SlowConsumerCloses prometheus.Counter
	SessionResumes     prometheus.Counter
	APIRequests        *prometheus.CounterVec   // endpoint, code
	APILatency         *prometheus.HistogramVec // endpoint
	RateLimited        prometheus.Counter
	RPCCalls           *prometheus.CounterVec   // method, outcome
	RPCLatency         *prometheus.HistogramVec // method
	Peers              prometheus.Gauge
	EtcdSession        prometheus.Gauge
}

// New creates and registers the collectors.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Connections: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gows_connections", Help: "Open WebSocket connections on this node, per system.",
		}, []string{"system"}),
		Connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gows_connects_total", Help: "WebSocket connections accepted.",
		}),
		Disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gows_disconnects_total",
			Help: "WebSocket connections ended, by reason (normal, heartbeat, slow_consumer, too_big, shutdown, kicked, write_error).",
		}, []string{"reason"}),
		ConnectsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gows_connects_refused_total", Help: "WebSocket connects refused, by reason.",
		}, []string{"reason"}),
		MessagesPushed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gows_messages_pushed_total", Help: "Frames handed to client queues (messages and events).",
		}),
		MessagesDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gows_messages_dropped_total", Help: "Frames that could not be queued because the client was closing or overflowed.",
		}),
		SlowConsumerCloses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gows_slow_consumer_closes_total", Help: "Clients closed with 1008 because their queue overflowed.",
		}),
		SessionResumes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gows_session_resumes_total", Help: "Suspended sessions resumed on a new connection.",
		}),
		APIRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gows_api_requests_total", Help: "HTTP API requests, by endpoint and response code.",
		}, []string{"endpoint", "code"}),
		APILatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gows_api_request_duration_seconds", Help: "HTTP API latency, by endpoint.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"endpoint"}),
		RateLimited: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gows_api_rate_limited_total", Help: "API requests refused with 10010 (rate limit).",
		}),
		RPCCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gows_rpc_calls_total", Help: "Calls to other nodes, by method and outcome (ok, error, timeout, unreachable).",
		}, []string{"method", "outcome"}),
		RPCLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gows_rpc_duration_seconds", Help: "Latency of calls to other nodes, by method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"method"}),
		Peers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gows_cluster_peers", Help: "Other nodes known from etcd.",
		}),
		EtcdSession: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gows_etcd_session_up", Help: "1 while this node holds a live etcd lease, else 0 (standalone: 0).",
		}),
	}
	r.MustRegister(m.Connections, m.Connects, m.Disconnects, m.ConnectsRefused, m.MessagesPushed,
		m.MessagesDropped, m.SlowConsumerCloses, m.SessionResumes, m.APIRequests, m.APILatency, m.RateLimited,
		m.RPCCalls, m.RPCLatency, m.Peers, m.EtcdSession,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
