package relay

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"slices"
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
//
// Serve it from an http.Server with ReadHeaderTimeout
// (Config.HTTPHeaderTimeout, at most Config.HTTPReadTimeout), ReadTimeout
// (Config.HTTPReadTimeout) and IdleTimeout (Config.HTTPIdleTimeout) set, as
// cmd/relay does: the Server bounds what a WebSocket may hold, the
// http.Server what a plain HTTP client may. The deadlines an upgraded
// connection inherits from the http.Server are cleared.
type Server struct {
	cfg     Config
	log     *slog.Logger
	hub     hub.Hub
	tokens  token.Store
	auths   *auth.Authorities
	addrs   *auth.ClientAddr
	origins *auth.Origins
	hosts   *auth.Hosts  // Host headers an address-authorised API request may carry
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

	unknownAddrLog     rateLog // a trusted proxy's unusable forwarded values (trust.go)
	undeclaredProxyLog rateLog // forwarding headers straight from an authority address (trust.go)

	ids          *clientid.Source // client ids, never reused (package clientid)
	draining     atomic.Bool
	started      time.Time                               // the monotonic epoch of rate-limit clocks
	unfinished   atomic.Int64                            // bytes held in unfinished messages (limits.go)
	budgetLogged atomic.Int64                            // when the unfinished-bytes budget was last logged, unix nanoseconds
	closed       [protocol.NumCloseReasons]atomic.Uint64 // disconnects by reason

	fds    *fdGuard // descriptor headroom (fdlimit.go); set by GuardListener
	fdOnce sync.Once

	admitMu  sync.Mutex
	admitted int                  // WebSockets admitted and not yet gone; guarded by admitMu
	perAddr  map[netip.Prefix]int // the same by address (addrKey); guarded by admitMu

	node   *cluster.Node   // nil without RELAY_NATS_URL (cluster.go)
	broker *cluster.Broker // under hub, with node
	mem    *hub.Memory     // hub, for the broker's deliveries

	pings pingSchedule // keepalive pings of every connection (pingsched.go)

	mu      sync.Mutex
	live    []*conn        // connected WebSockets, each at its conn.liveAt; guarded by mu (a slice: a map's slot cost ~30 bytes per connection)
	serving sync.WaitGroup // one per connection, until its end
}

// New returns a Server for cfg. It fails when cfg does not validate or a
// file it names cannot be read.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, started: time.Now(), perAddr: map[netip.Prefix]int{}}
	if s.log == nil {
		s.log = cfg.NewLogger(os.Stderr)
	}
	for _, w := range cfg.EnvWarnings {
		s.log.Warn("environment variable ignored: "+w.Name+" "+w.Problem, "var", w.Name, "did_you_mean", w.Closest)
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
		return nil, fmt.Errorf("relay: RELAY_TRUSTED_PROXIES or RELAY_CLIENT_IP_HEADER: %w", err)
	}
	if s.origins, err = auth.NewOrigins(cfg.Origins); err != nil {
		return nil, fmt.Errorf("relay: RELAY_ORIGINS: %w", err)
	}
	if s.hosts, err = auth.NewHosts(cfg.AllowedHosts); err != nil {
		return nil, fmt.Errorf("relay: RELAY_ALLOWED_HOSTS: %w", err)
	}
	s.warnTrustMistakes()
	s.ids = clientid.NewSource(clientid.Clock(cfg.Now))
	mem := hub.NewMemory(cfg.MaxChannelMembers)
	s.hub = mem
	s.tokens = token.NewMemory(&token.MemoryOptions{Rejoin: cfg.TokenRejoin, Now: cfg.Now,
		MaxCount: cfg.TokenMaxCount, MaxBytes: int64(cfg.TokenMaxBytes)})

	reg := prometheus.NewRegistry()
	s.metrics = metrics.New(reg, metrics.Gauges{
		Connections:  func() float64 { return float64(s.Clients()) },
		Channels:     func() float64 { return float64(s.Channels()) },
		QueuedBytes:  s.queuedBytes,
		Unfinished:   func() float64 { return float64(s.unfinished.Load()) },
		ReadParked:   func() float64 { return s.readStat(func(p *poller) int { return p.parkedNow() }) },
		ReadWorkers:  func() float64 { return s.readStat(func(p *poller) int { return p.workersNow() }) },
		Disconnects:  func(r protocol.CloseReason) float64 { return float64(s.closed[r].Load()) },
		BuildVersion: cfg.Version,

		PluginResourceAges: s.pluginResourceAges, // plugin_resources.go
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
	} else {
		// Not a WebSocket endpoint either: answer what a scraper pointed at
		// the wrong port needs to hear.
		s.mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "relay: metrics are served on RELAY_METRICS_ADDR, not on this port", http.StatusNotFound)
		})
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
	for _, c := range s.live {
		c.mu.Lock()
		total += c.queued
		c.mu.Unlock()
	}
	return float64(total)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.headersTooLarge(r) {
		s.refuseHeaders(w, r)
		return
	}
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
	if v := strings.TrimSpace(r.Header.Get("Sec-WebSocket-Version")); v != "13" {
		// RFC 6455 4.4: name the version the relay speaks, as the
		// reference server does.
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "relay: unsupported WebSocket version; this relay speaks version 13", http.StatusUpgradeRequired)
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
	addr := s.clientOf(r)
	perAddr, ok := s.admit(w, addr)
	if !ok {
		return
	}
	release := func() { s.unadmit(addr, perAddr) }
	id, err := s.ids.Next(r.Context())
	if err != nil {
		release()
		s.log.Error("no client id for a new connection", "err", err)
		http.Error(w, "relay: unavailable", http.StatusServiceUnavailable)
		return
	}

	var cork *corkConn
	var park *parkedReader
	var br *bufio.Reader
	hw := hijackWriter{ResponseWriter: w, sock: &cork, br: &br}
	if p := s.parkPoller(); p != nil {
		hw.park, hw.p = &park, p
	}
	ws, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		InsecureSkipVerify: true, // the origin was checked above, with the relay's own rules
		CompressionMode:    websocket.CompressionDisabled,
		OnPingReceived:     onPing,
	})
	if err != nil {
		s.log.Debug("websocket handshake failed", "addr", r.RemoteAddr, "err", err)
		release()
		return
	}
	// The library re-reads what the reader buffered before the hijack
	// through an io.MultiReader it puts under the reader (golang/go#32314),
	// 56 bytes kept for the connection's life. Hijack handed it a fresh
	// reader (net/http's early bytes are in cork.early), so that prefix is
	// empty and reading cork directly is the same stream.
	if br.Buffered() == 0 {
		br.Reset(cork)
	}
	s.metrics.ConnectionsTotal.Inc()
	c := newConn(s, id, ws, cork, park, addr, origin)
	if !s.register(c) {
		ws.Close(websocket.StatusCode(protocol.CloseServerRestart.Status()), protocol.CloseServerRestart.Text())
		release()
		return
	}
	// Serve the client off the handler goroutine and let the handler
	// return: net/http keeps the request, the response's buffers and its
	// own 4 KB writer alive until the handler returns, and the handler
	// goroutine's deep stack with them, which was most of an idle
	// connection's memory (BENCHMARKS.md, "Memory per idle connection").
	c.perAddr = perAddr
	c.serve()
}

// parkPoller returns the epoll set idle connections park on, or nil when
// connections are not parked (RELAY_READ_PARKING=false, or not Linux).
// Every Server in the process shares one set, started with the first
// connection: its loop is one goroutine for the process, however many
// servers (a test binary, or instances of a cluster test, runs several).
func (s *Server) parkPoller() *poller {
	if !s.cfg.ReadParking || !parkingAvailable {
		return nil
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		p, err := newPoller(s.log)
		if err != nil {
			s.log.Warn("read parking unavailable; one reader goroutine per connection", "err", err)
		}
		shared.p = p
	}
	return shared.p
}

// shared is the process's epoll set for parked connections.
var shared struct {
	mu      sync.Mutex
	started bool
	p       *poller // nil when it could not start
}

// readStat reads a figure of the shared poller, 0 without one.
func (s *Server) readStat(f func(*poller) int) float64 {
	if !s.cfg.ReadParking {
		return 0
	}
	shared.mu.Lock()
	p := shared.p
	shared.mu.Unlock()
	if p == nil {
		return 0
	}
	return float64(f(p))
}

// register adds c unless the server is draining; the caller owes
// s.serving.Done() when it returns true.
func (s *Server) register(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return false
	}
	c.liveAt = int32(len(s.live))
	s.live = append(s.live, c)
	s.serving.Add(1)
	return true
}

func (s *Server) unregister(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.live[len(s.live)-1]
	s.live[c.liveAt], last.liveAt = last, c.liveAt
	s.live[len(s.live)-1] = nil
	s.live = s.live[:len(s.live)-1]
	if cap(s.live) > 1024 && len(s.live) < cap(s.live)/4 {
		s.live = slices.Clone(s.live) // do not keep a crowd's array after it left
	}
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
// nil when the channel does not exist. In cluster mode it includes the
// other instances' members (read from the shared state when this instance
// has none in the channel; nil when that cannot be read).
func (s *Server) Members(name, protocol string) []protocol.Member {
	ch := s.hub.Lookup(name, protocol)
	if ch == nil {
		if s.broker != nil {
			ctx, cancel := s.opContext()
			defer cancel()
			if ms, _ := s.remoteMembers(ctx, name, protocol); len(ms) > 0 {
				return ms
			}
		}
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
	clients := slices.Clone(s.live)
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
		// Cut the sockets themselves: a close handshake in progress with a
		// client that does not read would hold the library for 5 s more.
		s.mu.Lock()
		left := slices.Clone(s.live)
		for _, c := range left {
			c.sock.cut(0)
		}
		s.mu.Unlock()
		for _, c := range left {
			c.ws.CloseNow()
			c.wakeReader()
		}
		// The read loops end promptly once their sockets are closed.
		select {
		case <-done:
		case <-time.After(time.Second):
		}
		return fmt.Errorf("relay: shutdown: %w", ctx.Err())
	}
}
