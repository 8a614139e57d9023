package relay

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/relay-project/relay/relay/internal/plugin"
)

// Config is the relay's whole configuration: one flat struct read from
// environment variables by LoadConfig, so one image runs anywhere. Each
// field's tag names its variable, its default and what it means; `relay -h`
// prints them and the README's table lists them.
//
// Library users start from DefaultConfig and change what they need.
type Config struct {
	// Port is the TCP port cmd/relay listens on.
	Port int `env:"PORT" envDefault:"7328" help:"TCP port to listen on (Cloud Run and Fly.io set it)."`
	// Host is the address cmd/relay listens on; empty means every interface.
	Host string `env:"RELAY_HOST" help:"Address to listen on; empty means every interface."`

	// Origins is the allowlist of browser origins that may open a
	// WebSocket: exact origins or patterns with '*'; "*" allows any.
	Origins []string `env:"RELAY_ORIGINS" envDefault:"http://localhost,http://localhost:*,http://127.0.0.1,http://127.0.0.1:*,http://[::1],http://[::1]:*" help:"Browser origins allowed to connect: exact origins or patterns with '*' (https://*.example.com); '*' allows any. The default allows pages served from this machine."`
	// RequireOrigin refuses handshakes without an Origin header. Browsers
	// always send one; other clients (backends, the PHP SDK) may not.
	RequireOrigin bool `env:"RELAY_REQUIRE_ORIGIN" envDefault:"false" help:"Refuse WebSocket handshakes that carry no Origin header (non-browser clients usually send none)."`

	// AuthorityIPs are the addresses and CIDR ranges whose clients are
	// authorities; "ADDR#proto1|proto2" limits an entry to some protocols.
	// The single entry "none" turns address authority off; so does an
	// empty list in a Config built by hand.
	AuthorityIPs []string `env:"RELAY_AUTHORITY_IPS" envDefault:"127.0.0.0/8,::1" help:"Addresses and CIDR ranges whose clients are authorities; ADDR#proto1|proto2 limits an entry to those protocols; none turns address authority off (set but empty is refused)."`
	// AllowedHosts are the host names (besides IP literals and localhost)
	// an HTTP API request authorised by its address may carry as Host.
	AllowedHosts []string `env:"RELAY_ALLOWED_HOSTS" help:"Host names, besides IP literals and localhost, that an HTTP API request authorised by its address (no token) may send as Host; others get 403 host_not_allowed (DNS rebinding)."`
	// AuthorityTokens are static authority tokens; "TOKEN#proto1|proto2"
	// limits one to some protocols. Never logged.
	AuthorityTokens []string `env:"RELAY_AUTHORITY_TOKENS" help:"Static authority tokens, comma-separated; TOKEN#proto1|proto2 limits a token to those protocols. Secret."`
	// AuthorityTokensFile names a file holding more authority tokens, one
	// per line or comma-separated (for secrets mounted as files).
	AuthorityTokensFile string `env:"RELAY_AUTHORITY_TOKENS_FILE" help:"File with more authority tokens, one per line or comma-separated (a mounted secret)."`

	// TrustedProxies are the proxies (addresses or CIDR ranges) whose
	// forwarding headers are believed. Empty: headers are ignored.
	TrustedProxies []string `env:"RELAY_TRUSTED_PROXIES" help:"Proxies (addresses or CIDR ranges) whose X-Forwarded-For or client-IP header is believed; empty ignores those headers."`
	// ClientIPHeader is a platform header carrying the client address
	// (e.g. Fly-Client-IP), read only from trusted proxies. Empty means
	// X-Forwarded-For.
	ClientIPHeader string `env:"RELAY_CLIENT_IP_HEADER" help:"Header a trusted proxy puts the client address in, one bare address (e.g. Fly-Client-IP); empty (or X-Forwarded-For) uses X-Forwarded-For, rightmost untrusted hop; Forwarded (RFC 7239) is refused."`

	// TokenTTL is how long a new grant token may wait for its first JOIN.
	TokenTTL time.Duration `env:"RELAY_TOKEN_TTL" envDefault:"30s" help:"How long a new grant token stays valid before its first JOIN."`
	// TokenRejoin is how long a grant token is valid again after its member
	// leaves or disconnects.
	TokenRejoin time.Duration `env:"RELAY_TOKEN_REJOIN" envDefault:"30s" help:"How long a grant token is valid again after its member leaves or disconnects."`
	// TokenMaxCount caps the grant tokens held at once.
	TokenMaxCount int `env:"RELAY_TOKEN_MAX_COUNT" envDefault:"100000" help:"Most grant tokens not yet used or within their rejoin window held at once (a token a joined member holds is not counted); past it GRANT gets errorcode token_limit_reached and POST /v1/tokens 429 token_limit_reached."`
	// TokenMaxBytes caps the memory grant tokens take, extras included.
	TokenMaxBytes int `env:"RELAY_TOKEN_MAX_BYTES" envDefault:"67108864" help:"Most bytes the grant tokens counted by RELAY_TOKEN_MAX_COUNT may take (extras included, plus about 160 bytes each); past it GRANT gets errorcode token_limit_reached and POST /v1/tokens 429 token_limit_reached."`
	// TokenMaxTTL caps the lifetime an on-token-create plugin may give a
	// grant token.
	TokenMaxTTL time.Duration `env:"RELAY_TOKEN_MAX_TTL" envDefault:"1h" help:"Longest lifetime before first JOIN an on-token-create plugin may give a grant token; a longer one is cut to this."`
	// MaxChannelsPerClient caps one connection's non-authority memberships.
	MaxChannelsPerClient int `env:"RELAY_MAX_CHANNELS_PER_CLIENT" envDefault:"256" help:"Most channels one connection may join as a non-authority."`
	// MaxMessageBytes is the largest message a client may send; a larger
	// one closes its connection with code 1009.
	MaxMessageBytes int `env:"RELAY_MAX_MESSAGE_BYTES" envDefault:"65536" help:"Largest message a client may send; a larger one closes that connection with code 1009."`
	// MaxExtraBytes caps one member's extra (compact JSON): a larger one is
	// refused on GRANT, SET_EXTRA and the HTTP API, and is a bad output from
	// a plugin. Every member's extra is in a joiner's JOINED.
	MaxExtraBytes int `env:"RELAY_MAX_EXTRA_BYTES" envDefault:"4096" help:"Largest extra (compact JSON) a member or grant token may carry; a larger one gets extra_too_large (GRANT, SET_EXTRA, POST /v1/tokens) or is a plugin's bad output."`
	// MaxChannelMembers caps the members of one channel.
	MaxChannelMembers int `env:"RELAY_MAX_CHANNEL_MEMBERS" envDefault:"100000" help:"Most members one channel may have; a JOIN past it gets channel_full."`
	// OutboundQueueBytes caps the bytes waiting to be written to one
	// client; past it the client is disconnected as a slow consumer. One
	// frame queued while nothing else waits is let through whatever its
	// size (a JOINED listing a big channel).
	OutboundQueueBytes int `env:"RELAY_OUTBOUND_QUEUE_BYTES" envDefault:"1048576" help:"Bytes that may wait to be written to one client; past this it is disconnected as a slow consumer (code 1008). A single frame larger than this (a big channel's JOINED) is sent when nothing else waits."`
	// WriteTimeout bounds one write to a client; a client that does not
	// take its data in time is disconnected as a slow consumer.
	WriteTimeout time.Duration `env:"RELAY_WRITE_TIMEOUT" envDefault:"10s" help:"Longest one write to a client may take before it is disconnected as a slow consumer."`
	// PingInterval is how often the relay pings each client; a client that
	// does not answer within the same interval is dropped.
	PingInterval time.Duration `env:"RELAY_PING_INTERVAL" envDefault:"30s" help:"Keepalive ping interval; a client that does not answer within one interval is dropped."`
	// MaxConnectionAge closes a connection this old (less up to a tenth,
	// at random) with 1012, before a platform's request timeout cuts it.
	MaxConnectionAge time.Duration `env:"RELAY_MAX_CONNECTION_AGE" envDefault:"0s" help:"Close a WebSocket this old (less up to a tenth, at random, so clients do not reconnect together) with 1012, so the SDKs reconnect and rejoin with their tokens before the platform cuts it; set a few minutes under Cloud Run's request timeout. 0 turns it off."`
	// ReadParking parks idle connections on an epoll set instead of a
	// reader goroutine each (Linux; elsewhere it has no effect). On by
	// default; false keeps a reader goroutine per connection
	// (RATIONALE.md).
	ReadParking bool `env:"RELAY_READ_PARKING" envDefault:"true" help:"Park idle connections on an epoll set (Linux; elsewhere a reader goroutine per connection whatever this says) instead of holding a reader goroutine for each: about half the memory per idle connection. A request that may wait (a plugin call, a NATS round trip) runs off the bounded pool of read workers. false is the way back to a reader goroutine per connection."`
	// ShutdownTimeout bounds a graceful shutdown (SIGTERM/SIGINT).
	ShutdownTimeout time.Duration `env:"RELAY_SHUTDOWN_TIMEOUT" envDefault:"8s" help:"Longest a graceful shutdown may take: flush queues, close every client with 1012, exit."`
	// MessageTimeout bounds how long a message may take to arrive once its
	// first frame has: a client still sending one then is closed with 1008
	// (message_timeout).
	MessageTimeout time.Duration `env:"RELAY_MESSAGE_TIMEOUT" envDefault:"5s" help:"Longest a message may take to arrive once it has started (a fragmented or trickled message); past it the connection is closed with 1008 message_timeout."`
	// UnfinishedBytes caps the bytes of unfinished messages (started, not
	// yet whole) held for every client together; a client whose message
	// would pass it is closed with 1013 (unfinished_budget).
	UnfinishedBytes int `env:"RELAY_UNFINISHED_BYTES" envDefault:"67108864" help:"Most bytes of unfinished messages (started but not yet whole) the relay holds for all clients together; a client whose message passes it is closed with 1013 unfinished_budget."`
	// JoinTimeout closes a connection that is in no channel this long after
	// connecting or after leaving its last channel (1008, join_timeout),
	// unless it has proved authority. 0 disables it.
	JoinTimeout time.Duration `env:"RELAY_JOIN_TIMEOUT" envDefault:"30s" help:"A connection in no channel this long after connecting, or after leaving its last channel, is closed with 1008 join_timeout; connections from an authority address or that sent a valid authority token are exempt. 0 disables it."`
	// ClientRate is the sustained number of messages per second one
	// connection may send (every WebSocket message and ping counts); 0
	// disables the limit.
	ClientRate int `env:"RELAY_CLIENT_RATE" envDefault:"100" help:"Messages (and pings) per second one connection may send, sustained; past it (and RELAY_CLIENT_BURST) a message is dropped with errorcode rate_limited (it takes no token, so the client still gets its rate through), and a client that keeps sending faster than three times the rate is closed with 1008 rate_limited. 0 disables it."`
	// ClientBurst is how many messages one connection may send at once
	// above ClientRate.
	ClientBurst int `env:"RELAY_CLIENT_BURST" envDefault:"300" help:"Messages one connection may send at once before RELAY_CLIENT_RATE applies; a client whose refused messages (forgiven at twice the rate) pile up past this many is closed."`
	// ClientRateAuthorities applies ClientRate to authorities too. By
	// default a connection that has proved authority is not limited: a
	// backend publishing thousands of messages a second is normal.
	ClientRateAuthorities bool `env:"RELAY_CLIENT_RATE_AUTHORITIES" envDefault:"false" help:"Apply RELAY_CLIENT_RATE to authorities too (by default a connection from an authority address, with an authority token or an authority membership is not rate limited)."`

	// HTTPHeaderTimeout bounds reading one HTTP request's headers, on the
	// server cmd/relay builds (http.Server.ReadHeaderTimeout): it is how
	// long a connection that never sends a request is held.
	HTTPHeaderTimeout time.Duration `env:"RELAY_HTTP_HEADER_TIMEOUT" envDefault:"10s" help:"Longest the headers of one HTTP request (the WebSocket handshake included) may take to arrive, from the connection's start or the end of the previous request; a connection that sends none in time is closed without an answer, so this bounds what a silent TCP connection holds (cmd/relay's http.Server ReadHeaderTimeout; the shorter of this and RELAY_HTTP_READ_TIMEOUT applies)."`
	// HTTPReadTimeout bounds reading one HTTP request, headers and body,
	// on the server cmd/relay builds (http.Server.ReadTimeout).
	HTTPReadTimeout time.Duration `env:"RELAY_HTTP_READ_TIMEOUT" envDefault:"10s" help:"Longest reading one HTTP request (headers and body) may take; a slower HTTP API body gets 408 request_timeout and the connection is closed (cmd/relay's http.Server ReadTimeout; a WebSocket is exempt once upgraded)."`
	// HTTPIdleTimeout closes a keep-alive HTTP connection idle this long,
	// on the server cmd/relay builds (http.Server.IdleTimeout).
	HTTPIdleTimeout time.Duration `env:"RELAY_HTTP_IDLE_TIMEOUT" envDefault:"60s" help:"A keep-alive HTTP connection idle this long between requests is closed (cmd/relay's http.Server IdleTimeout)."`
	// MaxHeaderBytes caps a request's header fields in all, on the
	// WebSocket handshake and the HTTP API.
	MaxHeaderBytes int `env:"RELAY_MAX_HEADER_BYTES" envDefault:"16384" help:"Most bytes of header fields one HTTP request (a WebSocket handshake included) may carry in all; more gets 431."`
	// MaxHeaderFieldBytes caps one header field (name and value).
	MaxHeaderFieldBytes int `env:"RELAY_MAX_HEADER_FIELD_BYTES" envDefault:"8192" help:"Most bytes one header field (name and value) may take; a larger one gets 431."`
	// MaxConnections caps the WebSockets open at once; 0 disables.
	MaxConnections int `env:"RELAY_MAX_CONNECTIONS" envDefault:"20000" help:"Most WebSockets open at once (about 5 KB each when idle with read parking, 11 KB without: fits a 1 GB container with room for queues); past it a handshake gets 503 with Retry-After (never from an authority address). 0 disables."`
	// MaxConnectionsPerAddr caps the WebSockets from one client address
	// (an IPv4 address or an IPv6 /64); 0 disables.
	MaxConnectionsPerAddr int `env:"RELAY_MAX_CONNECTIONS_PER_ADDR" envDefault:"1000" help:"Most WebSockets open at once from one client address (IPv4 address or IPv6 /64; generous for offices behind one NAT); past it a handshake gets 429 with Retry-After (never from an authority address). 0 disables."`
	// LimitLoopback counts loopback clients against MaxConnectionsPerAddr.
	LimitLoopback bool `env:"RELAY_LIMIT_LOOPBACK" envDefault:"false" help:"Count loopback clients (this machine: load tests, sidecars not listed as trusted proxies) against RELAY_MAX_CONNECTIONS_PER_ADDR."`
	// FDReserve is how many file descriptors are kept for probes, metrics
	// and the HTTP API: new WebSockets are refused before them.
	FDReserve int `env:"RELAY_FD_RESERVE" envDefault:"64" help:"File descriptors kept free for /readyz, /metrics and the HTTP API: with fewer left, a WebSocket handshake gets 503 with Retry-After."`

	// HTTPMaxBodyBytes caps the body of an HTTP API request (/v1/).
	HTTPMaxBodyBytes int `env:"RELAY_HTTP_MAX_BODY_BYTES" envDefault:"65536" help:"Largest body the HTTP API (/v1/) accepts; a larger one gets 413 request_too_large."`
	// RetainMax is the longest a message published through the HTTP API
	// may be retained for clients that join later.
	RetainMax time.Duration `env:"RELAY_RETAIN_MAX" envDefault:"1h" help:"Longest a published message may be retained for late joiners (the HTTP API's 'retain', in seconds, is capped by it)."`
	// RetainMaxMessages caps how many retained messages the relay holds.
	RetainMaxMessages int `env:"RELAY_RETAIN_MAX_MESSAGES" envDefault:"10000" help:"Most retained messages held at once (the latest per channel, protocol and cmd); past it a retained publish gets 429 retain_limit_reached."`
	// RetainMaxBytes caps the memory retained messages take.
	RetainMaxBytes int `env:"RELAY_RETAIN_MAX_BYTES" envDefault:"67108864" help:"Most bytes retained messages may take in all; past it a retained publish gets 429 retain_limit_reached."`

	// NATSURL turns cluster mode on: the NATS servers (comma-separated)
	// through which several instances behave as one relay.
	NATSURL string `env:"RELAY_NATS_URL" help:"NATS servers (comma-separated URLs, JetStream enabled, nats-server 2.11 or later) through which several relay instances behave as one relay; empty runs one instance alone, with no NATS connection."`
	// NATSCredsFile is a NATS credentials file (a mounted secret).
	NATSCredsFile string `env:"RELAY_NATS_CREDS_FILE" help:"NATS credentials file (JWT and NKey seed, a mounted secret); empty connects without credentials."`
	// NATSPrefix starts every subject and bucket, so deployments can
	// share one NATS.
	NATSPrefix string `env:"RELAY_NATS_PREFIX" envDefault:"relay" help:"Prefix of every NATS subject and JetStream bucket the relay uses (A-Z a-z 0-9 _ -, at most 32), so several deployments can share one NATS."`
	// NATSKVReplicas is the replica count of the JetStream KV buckets.
	NATSKVReplicas int `env:"RELAY_NATS_KV_REPLICAS" envDefault:"1" help:"Replicas of the relay's JetStream key-value buckets: 1 on a single NATS server, 3 on a NATS cluster."`
	// ClusterNodeTTL bounds how long an instance that died without a
	// goodbye is still counted live: the others report its members LEFT
	// within it plus about 2s.
	ClusterNodeTTL time.Duration `env:"RELAY_CLUSTER_NODE_TTL" envDefault:"15s" help:"How long an instance that stopped without a goodbye (kill -9, lost network) still counts as live; the other instances report its members LEFT within this plus about 2s. At least 3s."`

	// MetricsAddr, when set, is a separate listen address (e.g. ":9090")
	// for /metrics, /healthz and /readyz, so metrics need not be public;
	// /metrics then leaves the main port.
	MetricsAddr string `env:"RELAY_METRICS_ADDR" help:"Separate listen address for /metrics, /healthz and /readyz (e.g. :9090); when set, /metrics on the main port answers 404."`

	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"RELAY_LOG_LEVEL" envDefault:"info" help:"Log level: debug, info, warn or error."`
	// LogFormat is json or text.
	LogFormat string `env:"RELAY_LOG_FORMAT" envDefault:"json" help:"Log format: json or text."`

	// Plugins are the WASM plugin files, run in this order for every hook
	// they implement (see plugin-sdk/README.md).
	Plugins []string `env:"RELAY_PLUGINS" help:"WASM plugin files (comma-separated paths), run in this order; each one's configuration is RELAY_PLUGIN_CONFIG_<NAME> (NAME: file name without .wasm, upper case, other characters as _; a value @FILE reads FILE)."`
	// PluginTimeout bounds one call into a plugin; a guest still running
	// then is stopped and its instance replaced.
	PluginTimeout time.Duration `env:"RELAY_PLUGIN_TIMEOUT" envDefault:"100ms" help:"Deadline of one plugin call; a plugin still running then is stopped (errorcode plugin_timeout under the closed policy)."`
	// PluginMaxTokenBytes caps the JOIN token authorize-join plugins see.
	PluginMaxTokenBytes int `env:"RELAY_PLUGIN_MAX_TOKEN_BYTES" envDefault:"8192" help:"Longest JOIN token authorize-join plugins are given; a longer one is refused with token_too_large before any plugin runs."`
	// PluginMemoryMB caps each plugin instance's memory.
	PluginMemoryMB int `env:"RELAY_PLUGIN_MEMORY_MB" envDefault:"32" help:"Memory cap of one plugin instance, in MiB; a plugin that needs more at start-up stops the relay from starting."`
	// PluginInstances caps the pooled instances per plugin; 0 means GOMAXPROCS.
	PluginInstances int `env:"RELAY_PLUGIN_INSTANCES" envDefault:"0" help:"Most instances of one plugin running at once (a pool shared by all connections); 0 means the number of CPUs."`
	// PluginCacheDir keeps compiled plugins between starts; empty means the
	// user cache directory, "off" disables the cache.
	PluginCacheDir string `env:"RELAY_PLUGIN_CACHE_DIR" help:"Directory where compiled plugins are cached between starts; empty means $XDG_CACHE_HOME/relay/plugins (or ~/.cache/...), off disables it. A cache that cannot be written (read-only file system) is a warning: plugins missing from it are compiled in memory at every start."`
	// PluginFailAuthorizeJoin is the authorize-join failure policy.
	PluginFailAuthorizeJoin string `env:"RELAY_PLUGIN_FAIL_AUTHORIZE_JOIN" envDefault:"closed" help:"When an authorize-join plugin fails: closed refuses the JOIN, open skips the plugin."`
	// PluginFailFilterMessage is the filter-message failure policy.
	PluginFailFilterMessage string `env:"RELAY_PLUGIN_FAIL_FILTER_MESSAGE" envDefault:"closed" help:"When a filter-message plugin fails: closed refuses the message (the sender gets an error), open delivers it as if the plugin had passed it."`
	// PluginFailOnTokenCreate is the on-token-create failure policy.
	PluginFailOnTokenCreate string `env:"RELAY_PLUGIN_FAIL_ON_TOKEN_CREATE" envDefault:"closed" help:"When an on-token-create plugin fails: closed refuses the GRANT, open skips the plugin."`
	// PluginConfigs holds each plugin's configuration string by plugin name
	// (the file name without .wasm). LoadConfig fills it from
	// RELAY_PLUGIN_CONFIG_<NAME>; a value starting with @ names a file.
	PluginConfigs map[string]string `env:"-"`
	// EnvWarnings are the RELAY_* variables LoadConfig found set but does
	// not read (misspellings, a plugin's configuration for a plugin not
	// loaded); New logs each one once, at warn level.
	EnvWarnings []EnvWarning `env:"-"`
	// PluginResources holds each plugin's resource allow-list by plugin
	// name, from RELAY_PLUGIN_RESOURCES_<NAME>: the URLs the relay fetches
	// for it (see plugin-sdk/ABI.md, "Resources").
	PluginResources map[string]string `env:"-"`
	// PluginResourceStartup is fail (a resource that cannot be fetched at
	// start-up stops the relay) or wait (start; plugins see it as
	// unavailable until it arrives).
	PluginResourceStartup string `env:"RELAY_PLUGIN_RESOURCE_STARTUP" envDefault:"fail" help:"When a plugin resource (RELAY_PLUGIN_RESOURCES_<NAME>: URLs the relay fetches for a plugin, such as jwt-auth's JWKS) cannot be fetched at start-up: fail stops the relay with the URL and the reason; wait starts it, and the plugin refuses what needs the resource (jwt-auth: errorcode unavailable) until a fetch succeeds."`
	// PluginResourceTimeout bounds one fetch of a plugin resource.
	PluginResourceTimeout time.Duration `env:"RELAY_PLUGIN_RESOURCE_TIMEOUT" envDefault:"5s" help:"Deadline of one fetch of a plugin resource; a fetch that fails keeps the last good content and is retried with exponential backoff (1s doubling, at most RELAY_PLUGIN_RESOURCE_MIN_REFRESH)."`
	// PluginResourceMinRefresh floors Cache-Control max-age and spaces the
	// refetches a plugin asks for (jwt-auth on an unknown kid).
	PluginResourceMinRefresh time.Duration `env:"RELAY_PLUGIN_RESOURCE_MIN_REFRESH" envDefault:"1m" help:"Shortest time between two fetches of a plugin resource: the floor of the response's Cache-Control max-age and the limit on refetches a plugin asks for (jwt-auth asks on a token with an unknown kid)."`
	// PluginResourceMaxRefresh caps Cache-Control max-age.
	PluginResourceMaxRefresh time.Duration `env:"RELAY_PLUGIN_RESOURCE_MAX_REFRESH" envDefault:"1h" help:"Longest time a fetched plugin resource is used before it is fetched again: the ceiling of max-age, and the interval when the response has none (so a key removed from a JWKS is refused at the latest this long after)."`
	// PluginResourceMaxBytes caps one plugin resource.
	PluginResourceMaxBytes int `env:"RELAY_PLUGIN_RESOURCE_MAX_BYTES" envDefault:"1048576" help:"Largest plugin resource, in bytes; a larger response is a failed fetch (the last good content is kept)."`

	// Logger receives the relay's logs. Nil builds one from LogLevel and
	// LogFormat writing to stderr.
	Logger *slog.Logger `env:"-"`
	// Version is the build's version, shown in logs and the
	// relay_build_info metric. cmd/relay stamps it at build time.
	Version string `env:"-"`
	// Now is the clock for token expiry. Nil means time.Now; tests inject
	// their own.
	Now func() time.Time `env:"-"`
}

// DefaultConfig returns the configuration used when no variable is set.
func DefaultConfig() Config {
	cfg, err := loadConfig(map[string]string{})
	if err != nil {
		panic("relay: bad default configuration: " + err.Error())
	}
	return cfg
}

// LoadConfig reads the configuration from the process environment. A value
// that does not parse gives an error naming the variable and what it
// expected.
func LoadConfig() (Config, error) {
	return loadConfig(env.ToMap(os.Environ()))
}

func loadConfig(environ map[string]string) (Config, error) {
	var cfg Config
	err := env.ParseWithOptions(&cfg, env.Options{Environment: environ})
	if err != nil {
		return Config{}, explainEnvError(err, environ)
	}
	// Set but empty would silently mean the loopback default: refuse it
	// rather than guess whether "off" or "default" was meant.
	if v, ok := environ["RELAY_AUTHORITY_IPS"]; ok && strings.TrimSpace(v) == "" {
		return Config{}, errors.New("relay: bad configuration: RELAY_AUTHORITY_IPS is set but empty: want none to turn address authority off, or leave it unset for the default (127.0.0.0/8,::1)")
	}
	for _, p := range cfg.Plugins {
		name := plugin.PluginName(strings.TrimSpace(p))
		if v, ok := environ[plugin.ConfigEnvName(name)]; ok {
			if cfg.PluginConfigs == nil {
				cfg.PluginConfigs = map[string]string{}
			}
			cfg.PluginConfigs[name] = v
		}
		if v, ok := environ[plugin.ResourcesEnvName(name)]; ok {
			if cfg.PluginResources == nil {
				cfg.PluginResources = map[string]string{}
			}
			cfg.PluginResources[name] = v
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	cfg.EnvWarnings = checkEnv(environ, cfg.Plugins)
	return cfg, nil
}

// explainEnvError rewrites env's field-named errors into variable-named ones.
func explainEnvError(err error, environ map[string]string) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	var msgs []string
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := reflect.TypeFor[Config]().FieldByName(pe.Name); ok {
				name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
				msgs = append(msgs, fmt.Sprintf("%s=%q: want %s", name, environ[name], describeType(f.Type)))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("relay: bad configuration: %s", strings.Join(msgs, "; "))
}

func describeType(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[time.Duration]():
		return "a duration such as 30s, 500ms or 2m"
	case reflect.TypeFor[bool]():
		return "true or false"
	case reflect.TypeFor[int]():
		return "a whole number"
	}
	return t.String()
}

// Validate checks values that parse but make no sense, naming the variable.
func (c *Config) Validate() error {
	var errs []string
	bad := func(name, want string, got any) {
		errs = append(errs, fmt.Sprintf("%s=%v: want %s", name, got, want))
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("PORT", "a port number 0..65535", c.Port)
	}
	positive := []struct {
		name string
		v    time.Duration
	}{
		{"RELAY_TOKEN_TTL", c.TokenTTL},
		{"RELAY_TOKEN_REJOIN", c.TokenRejoin},
		{"RELAY_WRITE_TIMEOUT", c.WriteTimeout},
		{"RELAY_PING_INTERVAL", c.PingInterval},
		{"RELAY_SHUTDOWN_TIMEOUT", c.ShutdownTimeout},
		{"RELAY_MESSAGE_TIMEOUT", c.MessageTimeout},
		{"RELAY_HTTP_HEADER_TIMEOUT", c.HTTPHeaderTimeout},
		{"RELAY_HTTP_READ_TIMEOUT", c.HTTPReadTimeout},
		{"RELAY_HTTP_IDLE_TIMEOUT", c.HTTPIdleTimeout},
	}
	for _, p := range positive {
		if p.v <= 0 {
			bad(p.name, "a positive duration such as 30s", p.v)
		}
	}
	if c.TokenMaxCount < 1 {
		bad("RELAY_TOKEN_MAX_COUNT", "at least 1", c.TokenMaxCount)
	}
	if c.TokenMaxBytes < 1024 {
		bad("RELAY_TOKEN_MAX_BYTES", "at least 1024", c.TokenMaxBytes)
	}
	if c.RetainMax < time.Second {
		bad("RELAY_RETAIN_MAX", "a duration of at least 1s", c.RetainMax)
	}
	if c.RetainMaxMessages < 1 {
		bad("RELAY_RETAIN_MAX_MESSAGES", "at least 1", c.RetainMaxMessages)
	}
	if c.RetainMaxBytes < 1024 {
		bad("RELAY_RETAIN_MAX_BYTES", "at least 1024", c.RetainMaxBytes)
	}
	if c.MaxHeaderBytes < 1024 {
		bad("RELAY_MAX_HEADER_BYTES", "at least 1024", c.MaxHeaderBytes)
	}
	if c.MaxHeaderFieldBytes < 256 || c.MaxHeaderFieldBytes > c.MaxHeaderBytes {
		bad("RELAY_MAX_HEADER_FIELD_BYTES", fmt.Sprintf("256..RELAY_MAX_HEADER_BYTES (%d)", c.MaxHeaderBytes), c.MaxHeaderFieldBytes)
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"RELAY_MAX_CONNECTIONS", c.MaxConnections}, {"RELAY_MAX_CONNECTIONS_PER_ADDR", c.MaxConnectionsPerAddr}, {"RELAY_FD_RESERVE", c.FDReserve}} {
		if p.v < 0 {
			bad(p.name, "0 or more", p.v)
		}
	}
	if c.HTTPMaxBodyBytes < 1024 {
		bad("RELAY_HTTP_MAX_BODY_BYTES", "at least 1024", c.HTTPMaxBodyBytes)
	}
	if c.MaxExtraBytes < 2 {
		bad("RELAY_MAX_EXTRA_BYTES", "at least 2", c.MaxExtraBytes)
	}
	if c.MaxChannelMembers < 1 {
		bad("RELAY_MAX_CHANNEL_MEMBERS", "at least 1", c.MaxChannelMembers)
	}
	if c.PluginMaxTokenBytes < 1 {
		bad("RELAY_PLUGIN_MAX_TOKEN_BYTES", "at least 1", c.PluginMaxTokenBytes)
	}
	if c.TokenMaxTTL < c.TokenTTL {
		bad("RELAY_TOKEN_MAX_TTL", "at least RELAY_TOKEN_TTL", c.TokenMaxTTL)
	}
	if c.MaxChannelsPerClient < 1 {
		bad("RELAY_MAX_CHANNELS_PER_CLIENT", "at least 1", c.MaxChannelsPerClient)
	}
	if c.MaxMessageBytes < 64 {
		bad("RELAY_MAX_MESSAGE_BYTES", "at least 64", c.MaxMessageBytes)
	}
	if c.UnfinishedBytes < c.MaxMessageBytes {
		bad("RELAY_UNFINISHED_BYTES", fmt.Sprintf("at least RELAY_MAX_MESSAGE_BYTES (%d)", c.MaxMessageBytes), c.UnfinishedBytes)
	}
	if c.JoinTimeout < 0 {
		bad("RELAY_JOIN_TIMEOUT", "0 (off) or a positive duration such as 30s", c.JoinTimeout)
	}
	if c.ClientRate < 0 {
		bad("RELAY_CLIENT_RATE", "0 (off) or a number of messages per second", c.ClientRate)
	}
	if c.ClientRate > 0 && c.ClientBurst < 1 {
		bad("RELAY_CLIENT_BURST", "at least 1", c.ClientBurst)
	}
	if c.MaxConnectionAge != 0 && c.MaxConnectionAge < time.Second {
		bad("RELAY_MAX_CONNECTION_AGE", "0 (off) or a duration of at least 1s", c.MaxConnectionAge)
	}
	if c.NATSURL != "" {
		if c.ClusterNodeTTL < 3*time.Second {
			bad("RELAY_CLUSTER_NODE_TTL", "a duration of at least 3s", c.ClusterNodeTTL)
		}
		if c.NATSKVReplicas < 1 || c.NATSKVReplicas > 5 {
			bad("RELAY_NATS_KV_REPLICAS", "1..5", c.NATSKVReplicas)
		}
		if !validPrefix(c.NATSPrefix) {
			bad("RELAY_NATS_PREFIX", "1 to 32 of A-Z a-z 0-9 _ -", c.NATSPrefix)
		}
	}
	if c.OutboundQueueBytes < c.MaxMessageBytes {
		bad("RELAY_OUTBOUND_QUEUE_BYTES", fmt.Sprintf("at least RELAY_MAX_MESSAGE_BYTES (%d)", c.MaxMessageBytes), c.OutboundQueueBytes)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("RELAY_LOG_LEVEL", "debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		bad("RELAY_LOG_FORMAT", "json or text", c.LogFormat)
	}
	// Zero plugin settings mean their defaults (for Configs built by hand).
	if c.PluginTimeout < 0 {
		bad("RELAY_PLUGIN_TIMEOUT", "a positive duration such as 100ms", c.PluginTimeout)
	}
	if c.PluginMemoryMB < 0 || c.PluginMemoryMB > 4096 {
		bad("RELAY_PLUGIN_MEMORY_MB", "1..4096", c.PluginMemoryMB)
	}
	if c.PluginInstances < 0 {
		bad("RELAY_PLUGIN_INSTANCES", "0 (the number of CPUs) or more", c.PluginInstances)
	}
	if c.PluginResourceStartup != "" && c.PluginResourceStartup != "fail" && c.PluginResourceStartup != "wait" {
		bad("RELAY_PLUGIN_RESOURCE_STARTUP", "fail or wait", c.PluginResourceStartup)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"RELAY_PLUGIN_RESOURCE_TIMEOUT", c.PluginResourceTimeout},
		{"RELAY_PLUGIN_RESOURCE_MIN_REFRESH", c.PluginResourceMinRefresh},
		{"RELAY_PLUGIN_RESOURCE_MAX_REFRESH", c.PluginResourceMaxRefresh},
	} {
		if d.v < 0 {
			bad(d.name, "a positive duration", d.v)
		}
	}
	if c.PluginResourceMaxRefresh > 0 && c.PluginResourceMaxRefresh < c.PluginResourceMinRefresh {
		bad("RELAY_PLUGIN_RESOURCE_MAX_REFRESH", "at least RELAY_PLUGIN_RESOURCE_MIN_REFRESH", c.PluginResourceMaxRefresh)
	}
	if c.PluginResourceMaxBytes < 0 || c.PluginResourceMaxBytes > 64<<20 {
		bad("RELAY_PLUGIN_RESOURCE_MAX_BYTES", "1..67108864", c.PluginResourceMaxBytes)
	}
	for name, v := range c.PluginResources {
		if _, err := plugin.ParseResources(v); err != nil {
			bad(plugin.ResourcesEnvName(name), "http or https URLs separated by commas", v)
		}
	}
	for _, p := range []struct{ name, v string }{
		{"RELAY_PLUGIN_FAIL_AUTHORIZE_JOIN", c.PluginFailAuthorizeJoin},
		{"RELAY_PLUGIN_FAIL_FILTER_MESSAGE", c.PluginFailFilterMessage},
		{"RELAY_PLUGIN_FAIL_ON_TOKEN_CREATE", c.PluginFailOnTokenCreate},
	} {
		if _, err := plugin.ParsePolicy(p.v); err != nil {
			bad(p.name, "closed or open", p.v)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("relay: bad configuration: %s", strings.Join(errs, "; "))
	}
	return nil
}

// Addr returns the listen address, Host:Port.
func (c *Config) Addr() string {
	return fmt.Sprintf("%s:%d", c.Host, c.Port)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// NewLogger returns the logger c describes, writing to w. Durations are
// written as the text log and the variables write them ("8s"), in JSON too,
// where slog would write nanoseconds.
func (c *Config) NewLogger(w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	opts.ReplaceAttr = durationsAsText
	return slog.New(slog.NewJSONHandler(w, opts))
}

// durationsAsText is a slog ReplaceAttr writing durations as strings.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// EnvVar describes one environment variable the relay reads.
type EnvVar struct {
	Name    string
	Default string
	Help    string
}

// EnvVars lists every environment variable the relay reads, in Config
// order.
func EnvVars() []EnvVar {
	var out []EnvVar
	t := reflect.TypeFor[Config]()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, EnvVar{Name: name, Default: f.Tag.Get("envDefault"), Help: f.Tag.Get("help")})
	}
	return out
}

// helpWidth is the terminal width `relay -h` fits in.
const helpWidth = 80

// PrintEnvVars writes every variable with its default and meaning, in lines
// of at most 80 columns: the name and default, then the meaning indented.
func PrintEnvVars(w io.Writer) {
	for _, v := range EnvVars() {
		def := v.Default
		if def == "" {
			def = "empty"
		}
		if head := v.Name + " (default " + def + ")"; len(head) <= helpWidth {
			fmt.Fprintln(w, head)
		} else {
			// A long list default: break it after its commas, adding no
			// spaces, so each line can be copied as it is.
			items := strings.SplitAfter(def, ",")
			fmt.Fprintln(w, v.Name+" (default")
			printWrapped(w, "      ", items, "")
			fmt.Fprintln(w, "    )")
		}
		printWrapped(w, "    ", strings.Fields(v.Help), " ")
	}
}

// printWrapped writes words joined by sep in lines of at most helpWidth
// columns, each starting with indent. A word longer than a line gets a line
// of its own.
func printWrapped(w io.Writer, indent string, words []string, sep string) {
	line := ""
	for _, word := range words {
		if line != "" && len(indent)+len(line)+len(sep)+len(word) > helpWidth {
			fmt.Fprintln(w, indent+line)
			line = ""
		}
		if line != "" {
			line += sep
		}
		line += word
	}
	if line != "" {
		fmt.Fprintln(w, indent+line)
	}
}
