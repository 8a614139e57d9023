// Package metrics defines the relay's Prometheus metrics. Every metric is
// registered on a registry the caller passes in (no global state), and no
// label takes an unbounded value: never a channel name or a client id.
package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/relay-project/relay/relay/protocol"
)

// Metrics holds the collectors the relay updates on its paths.
type Metrics struct {
	ConnectionsTotal prometheus.Counter
	Requests         *prometheus.CounterVec // by request kind
	Errors           *prometheus.CounterVec // error replies by request kind and errorcode
	MessagesIn       prometheus.Counter
	Deliveries       prometheus.Counter
	BytesIn          prometheus.Counter
	BytesOut         prometheus.Counter
	FramesOut        prometheus.Counter
	WriteBatch       prometheus.Histogram
	PluginCalls      *prometheus.CounterVec   // by plugin, hook, outcome
	PluginSeconds    *prometheus.HistogramVec // by plugin, hook
	HTTPRequests     *prometheus.CounterVec   // HTTP API by route and status code
	UnknownAddrs     *prometheus.CounterVec   // requests from a trusted proxy with no usable client address, by reason
	Refused          *prometheus.CounterVec   // requests refused before they are served, by reason (Refused* below)
	UndeclaredProxy  *prometheus.CounterVec   // forwarding headers sent straight from an authority address, by header

	// PluginResourceFetches counts fetches of plugin resources by plugin,
	// resource (a URL from the operator's allow-list) and outcome.
	PluginResourceFetches *prometheus.CounterVec
	ReleaseErrors         prometheus.Counter // token releases the store failed
}

// Reasons used as the "reason" label of relay_refused_total.
const (
	RefusedHeaderTooLarge  = "header_too_large"         // 431: RELAY_MAX_HEADER_BYTES or RELAY_MAX_HEADER_FIELD_BYTES
	RefusedConnections     = "max_connections"          // 503: RELAY_MAX_CONNECTIONS
	RefusedConnectionsAddr = "max_connections_per_addr" // 429: RELAY_MAX_CONNECTIONS_PER_ADDR
	RefusedDescriptors     = "descriptors"              // 503: fewer than RELAY_FD_RESERVE descriptors left
	RefusedSilent          = "silent_connection"        // closed unanswered: no byte of a request within RELAY_HTTP_HEADER_TIMEOUT (cmd/relay's listener)
	RefusedTokenStoreFull  = "token_store_full"         // GRANT, POST /v1/tokens: RELAY_TOKEN_MAX_COUNT or RELAY_TOKEN_MAX_BYTES
)

// Request kinds used as the "request" label.
const (
	KindInvalid  = "invalid"
	KindGrant    = "grant"
	KindJoin     = "join"
	KindSetExtra = "set_extra"
	KindLeave    = "leave"
	KindMessage  = "message"
)

// Gauges reads values the relay already keeps, at scrape time, so the hot
// path pays nothing for them.
type Gauges struct {
	Connections func() float64
	Channels    func() float64
	QueuedBytes func() float64
	Unfinished  func() float64 // bytes held in unfinished messages
	// ReadParked and ReadWorkers describe read parking: connections
	// waiting on the epoll set with no goroutine, and the pool's workers
	// (nil: no parking).
	ReadParked   func() float64
	ReadWorkers  func() float64
	Disconnects  func(protocol.CloseReason) float64
	BuildVersion string
	// PluginResourceAges, when set, lists the plugin resources and the age
	// of the content held for each.
	PluginResourceAges func() []ResourceAge
}

// ResourceAge is the age of one plugin resource's content.
type ResourceAge struct {
	Plugin, URL string
	// Seconds since the last successful fetch; -1 when never fetched.
	Seconds float64
}

// resourceAges exports Gauges.PluginResourceAges; its labels are bounded
// by the operator's RELAY_PLUGIN_RESOURCES_<NAME> lists.
type resourceAges struct {
	desc *prometheus.Desc
	f    func() []ResourceAge
}

func (c resourceAges) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c resourceAges) Collect(ch chan<- prometheus.Metric) {
	for _, a := range c.f() {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, a.Seconds, a.Plugin, a.URL)
	}
}

// New creates the metrics and registers them, with the Go runtime and
// process collectors, on reg.
func New(reg prometheus.Registerer, g Gauges) *Metrics {
	m := &Metrics{
		ConnectionsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_connections_accepted_total", Help: "WebSocket connections accepted."}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_requests_total", Help: "Client requests handled, by request kind."}, []string{"request"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_request_errors_total", Help: "Requests refused with an error frame, by request kind and errorcode (join refusals are request=\"join\")."}, []string{"request", "errorcode"}),
		MessagesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_messages_received_total", Help: "Application messages accepted for delivery."}),
		Deliveries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_message_deliveries_total", Help: "Application messages queued for a recipient (one per recipient)."}),
		BytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_received_bytes_total", Help: "Payload bytes of WebSocket messages received."}),
		BytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_sent_bytes_total", Help: "Payload bytes of WebSocket messages written."}),
		FramesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_sent_messages_total", Help: "WebSocket messages written to clients."}),
		WriteBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "relay_write_batch_messages", Help: "WebSocket messages handed to the kernel in one write.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}),
		PluginCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_plugin_calls_total", Help: "Plugin hook calls, by plugin, hook and outcome."}, []string{"plugin", "hook", "outcome"}),
		PluginSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "relay_plugin_call_seconds", Help: "Plugin hook call latency.",
			Buckets: []float64{5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 1e-3, 5e-3, 25e-3, 100e-3}}, []string{"plugin", "hook"}),
		PluginResourceFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_plugin_resource_fetches_total", Help: "Fetches of plugin resources (RELAY_PLUGIN_RESOURCES_<NAME>), by plugin, resource and outcome (changed, unchanged, error)."}, []string{"plugin", "resource", "outcome"}),
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_http_requests_total", Help: "HTTP API requests, by route and status code."}, []string{"route", "code"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_refused_total", Help: "Requests, connections and grants refused by a relay limit, by reason."}, []string{"reason"}),
		ReleaseErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_token_release_errors_total", Help: "Grant token releases (a member left) the token store failed; such a token cannot be used to rejoin."}),
	}
	m.UnknownAddrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relay_client_address_unknown_total", Help: "Requests from a trusted proxy that forwarded no usable client address (missing, empty or malformed); never authorities by address."}, []string{"reason"})
	reg.MustRegister(m.UnknownAddrs)
	m.UndeclaredProxy = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relay_undeclared_proxy_requests_total", Help: "Requests straight from an authority address (not through a trusted proxy) carrying a forwarding header: most likely a proxy not in RELAY_TRUSTED_PROXIES, through which every client is an authority. By header."}, []string{"header"})
	reg.MustRegister(m.UndeclaredProxy)
	reg.MustRegister(m.ConnectionsTotal, m.Requests, m.Errors, m.MessagesIn, m.Deliveries, m.BytesIn, m.BytesOut,
		m.FramesOut, m.WriteBatch, m.PluginCalls, m.PluginSeconds, m.HTTPRequests, m.Refused, m.PluginResourceFetches, m.ReleaseErrors)
	if g.PluginResourceAges != nil {
		reg.MustRegister(resourceAges{f: g.PluginResourceAges, desc: prometheus.NewDesc("relay_plugin_resource_age_seconds",
			"Age of the content held for each plugin resource (since its last successful fetch); -1 when never fetched.", []string{"plugin", "resource"}, nil)})
	}

	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_connections", Help: "WebSocket connections open now."}, g.Connections),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_channels", Help: "Channels that exist now."}, g.Channels),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_outbound_queued_bytes", Help: "Bytes waiting in every client's outbound queue."}, g.QueuedBytes),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_unfinished_message_bytes", Help: "Bytes held in messages that started arriving but are not whole yet (capped by RELAY_UNFINISHED_BYTES)."}, g.Unfinished),
	)
	if g.ReadParked != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_read_parked_connections", Help: "Connections parked on the epoll set: nothing to read, no goroutine (RELAY_READ_PARKING)."}, g.ReadParked),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "relay_read_workers", Help: "Pool workers reading parked connections that became readable (bounded at 4 per core, at least 16; a connection waiting for the rest of a frame is read off the pool)."}, g.ReadWorkers),
		)
	}
	for _, r := range protocol.CloseReasons() {
		r := r
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "relay_disconnects_total", Help: "Connections closed, by reason (slow_consumer and write_timeout are slow consumers).",
			ConstLabels: prometheus.Labels{"reason": r.String()},
		}, func() float64 { return g.Disconnects(r) }))
	}
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "relay_build_info", Help: "Always 1; labels carry the build's version and Go version.",
		ConstLabels: prometheus.Labels{"version": g.BuildVersion, "goversion": runtime.Version()},
	})
	info.Set(1)
	reg.MustRegister(info,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}
