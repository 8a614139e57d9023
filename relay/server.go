package relay

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relay-project/relay/relay/internal/auth"
	"github.com/relay-project/relay/relay/internal/clientid"
	"github.com/relay-project/relay/relay/internal/cluster"
	"github.com/relay-project/relay/relay/internal/httpapi"
	"github.com/relay-project/relay/relay/internal/hub"
	"github.com/relay-project/relay/relay/internal/metrics"
	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/internal/retain"
	"github.com/relay-project/relay/relay/internal/token"
	"github.com/relay-project/relay/relay/jsclient"
	"github.com/relay-project/relay/relay/protocol"
)

// Server is a DRC relay. It is an http.Handler: mount it on any path of any
// mux; every request that asks for a WebSocket upgrade becomes a client, and
// GET /healthz and GET /readyz answer probes. GET /sdk/relay.js (also
// relay.mjs and relay.d.ts) serves the browser SDK; see package jsclient.
type Server struct {
	cfg     Config
	log     *slog.Logger
	hub     hub.Hub
	tokens  token.Store
	auths   *auth.Authorities
	addrs   *auth.ClientAddr
	origins *auth.Origins
	plugins *plugin.Host // nil without plugins
	mux     *http.ServeMux
	ops     *http.ServeMux // health and metrics
	metrics *metrics.Metrics
	reqs    [6]prometheus.Counter // relay_requests_total by request kind, curried

	api      *httpapi.Handler // the HTTP API at /v1/ (httpapi.go)
	retained retain.Store     // retained messages, stored by the HTTP API
	// retainedNow reads the retained messages a JOIN replays, without
	// blocking (hub.Replay); in one process, the retain.Memory's Now.
	retainedNow func(ch *hub.Channel) []retain.Message

	ids      *clientid.Source // client ids, never reused (package clientid)
	draining atomic.Bool
	closed   [protocol.NumCloseReasons]atomic.Uint64 // disconnects by reason

	node   *cluster.Node   // nil without RELAY_NATS_URL (cluster.go)
	broker *cluster.Broker // under hub, with node
	mem    *hub.Memory     // hub, for the broker's deliveries

	mu      sync.Mutex
	live    map[*conn]struct{} // connected WebSockets; guarded by mu
	serving sync.WaitGroup     // one per connection's read loop
}

// New returns a Server for cfg. It fails when cfg does not validate or a
// file it names cannot be read.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, live: map[*conn]struct{}{}}
	if s.log == nil {
		s.log = cfg.NewLogger(os.Stderr)
	}
	tokens := cfg.AuthorityTokens
	if cfg.AuthorityTokensFile != "" {
		b, err := os.ReadFile(cfg.AuthorityTokensFile)
		if err != nil {
			return nil, fmt.Errorf("relay: RELAY_AUTHORITY_TOKENS_FILE: %w", err)
		}
		tokens = append(tokens, strings.FieldsFunc(string(b), func(r rune) bool { return r == ',' || r == '\n' || r == '\r' })...)
	}
	var err error
	if s.auths, err = auth.NewAuthorities(cfg.AuthorityIPs, tokens); err != nil {
		return nil, fmt.Errorf("relay: RELAY_AUTHORITY_IPS or RELAY_AUTHORITY_TOKENS: %w", err)
	}
	if s.addrs, err = auth.NewClientAddr(cfg.TrustedProxies, cfg.ClientIPHeader); err != nil {
		return nil, fmt.Errorf("relay: RELAY_TRUSTED_PROXIES: %w", err)
	}
	if s.origins, err = auth.NewOrigins(cfg.Origins); err != nil {
		return nil, fmt.Errorf("relay: RELAY_ORIGINS: %w", err)
	}
	s.ids = clientid.NewSource(clientid.Clock(cfg.Now))
	mem := hub.NewMemory()
	s.hub = mem
	s.tokens = token.NewMemory(&token.MemoryOptions{Rejoin: cfg.TokenRejoin, Now: cfg.Now})

	reg := prometheus.NewRegistry()
	s.metrics = metrics.New(reg, metrics.Gauges{
		Connections:  func() float64 { return float64(s.Clients()) },
		Channels:     func() float64 { return float64(s.Channels()) },
		QueuedBytes:  s.queuedBytes,
		Disconnects:  func(r protocol.CloseReason) float64 { return float64(s.closed[r].Load()) },
		BuildVersion: cfg.Version,
	})
	for i, kind := range requestKinds {
		s.reqs[i] = s.metrics.Requests.WithLabelValues(kind)
	}
	if s.plugins, err = loadPlugins(cfg, s.log, s.metrics); err != nil {
		return nil, err
	}

	if cfg.NATSURL != "" {
		if err := s.joinCluster(mem, reg); err != nil {
			s.plugins.Close(context.Background())
			return nil, err
		}
	}

	s.ops = http.NewServeMux()
	s.ops.HandleFunc("GET /healthz", s.serveHealth)
	s.ops.HandleFunc("GET /readyz", s.serveReady)
	s.ops.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /healthz", s.serveHealth)
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	s.newAPI()
	s.mux.HandleFunc("/v1/", s.serveAPI)
	if cfg.MetricsAddr == "" {
		s.mux.Handle("GET /metrics", s.ops)
	}
	s.mux.Handle("GET "+jsclient.Path, jsclient.Handler(nil)) // the browser SDK: relay.js, relay.mjs, relay.d.ts
	s.mux.HandleFunc("/", s.serveWebSocket)
	return s, nil
}

// OpsHandler serves /healthz, /readyz and /metrics, for a separate listen
// address (RELAY_METRICS_ADDR).
func (s *Server) OpsHandler() http.Handler { return s.ops }

// queuedBytes sums every client's outbound queue, at scrape time.
func (s *Server) queuedBytes() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for c := range s.live {
		c.mu.Lock()
		total += c.queued
		c.mu.Unlock()
	}
	return float64(total)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "draining")
		return
	}
	if s.node != nil && !s.node.Ready() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "cluster unavailable")
		return
	}
	fmt.Fprintln(w, "ready")
}

// serveWebSocket checks the origin, upgrades and runs the client until it
// goes away.
func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "relay: this is a WebSocket endpoint (DRC protocol); see /healthz for probes", http.StatusUpgradeRequired)
		return
	}
	if s.draining.Load() {
		http.Error(w, "relay: shutting down", http.StatusServiceUnavailable)
		return
	}
	origin := r.Header.Get("Origin")
	if origin == "" && s.cfg.RequireOrigin || origin != "" && !s.origins.Allowed(origin) {
		s.log.Debug("origin refused", "origin", origin, "addr", r.RemoteAddr)
		http.Error(w, "relay: origin not allowed", http.StatusForbidden)
		return
	}
	addr := s.addrs.Resolve(r)
	id, err := s.ids.Next(r.Context())
	if err != nil {
		s.log.Error("no client id for a new connection", "err", err)
		http.Error(w, "relay: unavailable", http.StatusServiceUnavailable)
		return
	}

	var cork *corkConn
	ws, err := websocket.Accept(hijackWriter{w, &cork}, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked above, with the relay's own rules
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil {
		s.log.Debug("websocket handshake failed", "addr", r.RemoteAddr, "err", err)
		return
	}
	s.metrics.ConnectionsTotal.Inc()
	c := newConn(s, id, ws, cork, addr, origin)
	if !s.register(c) {
		ws.Close(websocket.StatusCode(protocol.CloseServerRestart.Status()), protocol.CloseServerRestart.Text())
		return
	}
	// Serve the client on its own goroutine and let the handler return:
	// net/http keeps the request, the response's buffers and its own 4 KB
	// writer alive until the handler returns, and the handler goroutine's
	// deep stack with them, which was most of an idle connection's memory
	// (BENCHMARKS.md, "Memory per idle connection").
	go func() {
		defer s.serving.Done()
		c.run()
	}()
}

// register adds c unless the server is draining; the caller owes
// s.serving.Done() when it returns true.
func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return false
	}
	s.live[c] = struct{}{}
	s.serving.Add(1)
	return true
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	delete(s.live, c)
	s.mu.Unlock()
}

// Clients returns how many clients are connected.
func (s *Server) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
}

// Channels returns how many channels exist.
func (s *Server) Channels() int { return s.hub.Channels() }

// Members returns the members of channel (name, protocol) in join order, or
// nil when the channel does not exist.
func (s *Server) Members(name, protocol string) []protocol.Member {
	ch := s.hub.Lookup(name, protocol)
	if ch == nil {
		return nil
	}
	return s.hub.Members(ch)
}

// Stats is a snapshot of the relay's counters.
type Stats struct {
	Clients  int // connected now
	Channels int // existing now
	// Closed counts disconnects since start by reason; slow consumers are
	// Closed[protocol.CloseSlowConsumer] and Closed[protocol.CloseWriteTimeout].
	Closed map[protocol.CloseReason]uint64
}

// Stats returns the relay's counters.
func (s *Server) Stats() Stats {
	st := Stats{Clients: s.Clients(), Channels: s.Channels(), Closed: map[protocol.CloseReason]uint64{}}
	for i := range s.closed {
		st.Closed[protocol.CloseReason(i)] = s.closed[i].Load()
	}
	return st
}

// Shutdown drains the relay: /readyz turns 503, new WebSockets are refused,
// and every client's queued messages are flushed before it is closed with
// code 1012 (service restart) so it reconnects, possibly elsewhere. It
// returns when every client is gone, or ctx's error when ctx ends first, in
// which case the remaining connections are closed at once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	clients := make([]*conn, 0, len(s.live))
	for c := range s.live {
		clients = append(clients, c)
	}
	s.mu.Unlock()

	s.log.Info("draining", "clients", len(clients))
	for _, c := range clients {
		go c.shutdown(ctx)
	}
	done := make(chan struct{})
	go func() {
		s.serving.Wait()
		close(done)
	}()
	defer s.plugins.Close(context.Background())
	defer s.leaveCluster() // after every client left its channels
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.live {
			c.ws.CloseNow()
		}
		s.mu.Unlock()
		// The read loops end promptly once their sockets are closed.
		select {
		case <-done:
		case <-time.After(time.Second):
		}
		return fmt.Errorf("relay: shutdown: %w", ctx.Err())
	}
}
