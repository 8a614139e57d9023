package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ClusterGauges reads the cluster's counters at scrape time.
type ClusterGauges struct {
	Connected func() float64 // 1 while the NATS connection is up
	LiveNodes func() float64
	Deaths    func() float64
	Lapses    func() float64
	EventsIn  func(kind string) float64
	EventsOut func(kind string) float64
	Gaps      func() float64
	Resyncs   func() float64
	Lost      func() float64
}

// EventKinds are the "kind" label values of the cluster event counters.
var EventKinds = []string{"join", "leave", "extra", "message"}

// RegisterCluster registers the cluster metrics on reg (only when
// RELAY_NATS_URL is set) and returns the observer of shared-state
// operation latency by operation.
func RegisterCluster(reg prometheus.Registerer, g ClusterGauges) func(op string, d time.Duration) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_cluster_nats_connected", Help: "1 while the NATS connection is up, else 0."}, g.Connected),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_cluster_live_instances", Help: "Relay instances holding a lease, this one included."}, g.LiveNodes),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "relay_cluster_instance_deaths_total", Help: "Other instances whose lease ended (their members were reported LEFT)."}, g.Deaths),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "relay_cluster_lease_lapses_total", Help: "Times this instance found its own lease expired (NATS out of its reach longer than RELAY_CLUSTER_NODE_TTL): every member here was closed with 1013 to rejoin."}, g.Lapses),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "relay_cluster_gaps_total", Help: "Channels whose events from another instance were lost (their local members closed with 1013)."}, g.Gaps),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "relay_cluster_resyncs_total", Help: "Channels resynchronised after a NATS reconnect."}, g.Resyncs),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "relay_cluster_lost_total", Help: "Events this instance could not publish (NATS out of reach)."}, g.Lost),
	)
	for _, k := range EventKinds {
		reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "relay_cluster_events_received_total", Help: "Events received from other instances, by kind.", ConstLabels: prometheus.Labels{"kind": k}}, func() float64 { return g.EventsIn(k) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "relay_cluster_events_sent_total", Help: "Events sent to other instances, by kind.", ConstLabels: prometheus.Labels{"kind": k}}, func() float64 { return g.EventsOut(k) }),
		)
	}
	seconds := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "relay_cluster_kv_seconds", Help: "Latency of shared-state (JetStream KV) operations, by operation.",
		Buckets: []float64{100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1},
	}, []string{"op"})
	reg.MustRegister(seconds)
	return func(op string, d time.Duration) { seconds.WithLabelValues(op).Observe(d.Seconds()) }
}
