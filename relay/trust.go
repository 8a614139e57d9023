package relay

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/relay-project/relay/relay/internal/auth"
)

// This file holds the relay's trust boundaries around addresses: who a
// request comes from (through trusted proxies), which Host a request
// authorised by its address may carry, and the start-up warnings about
// configurations that make the wrong people authorities. SECURITY.md states
// the rules.

// unknownAddrLogEvery is how often, at most, the relay logs that a trusted
// proxy forwarded no usable client address, or that an authority address
// sent a forwarding header (the metrics count every one).
const unknownAddrLogEvery = time.Minute

// clientOf resolves r's client address, counting and (once per interval)
// logging a trusted proxy's unusable forwarded value, and a forwarding
// header sent straight from an authority address (undeclaredProxy).
func (s *Server) clientOf(r *http.Request) auth.Client {
	c := s.addrs.Resolve(r)
	if c.Unknown != auth.UnknownNone { // not a peer without an IP address (a Unix socket): no proxy is involved
		s.metrics.UnknownAddrs.WithLabelValues(c.Unknown.String()).Inc()
		if missed, ok := s.unknownAddrLog.allow(); ok {
			s.log.Warn("a trusted proxy forwarded no usable client address: the client is not an authority by address",
				"reason", c.Unknown.String(), "peer", r.RemoteAddr, "header", s.addrs.Header(), "not_logged_since_last", missed,
				"see", "RELAY_TRUSTED_PROXIES, RELAY_CLIENT_IP_HEADER; metric relay_client_address_unknown_total")
		}
	} else if h := s.undeclaredProxy(c, r); h != "" {
		s.metrics.UndeclaredProxy.WithLabelValues(h).Inc()
		if missed, ok := s.undeclaredProxyLog.allow(); ok {
			s.log.Warn("a request straight from an authority address carries a forwarding header: if that address is a proxy, every client it forwards is an authority; list the proxy in RELAY_TRUSTED_PROXIES and give backends a token, or set RELAY_AUTHORITY_IPS=none",
				"peer", c.String(), "header", h, "not_logged_since_last", missed,
				"see", "SECURITY.md; metric relay_undeclared_proxy_requests_total")
		}
	}
	return c
}

// forwardingHeaders are the headers proxies add to name the client they
// forward.
var forwardingHeaders = [...]string{"X-Forwarded-For", "Forwarded", "X-Real-Ip"}

// undeclaredProxy returns the forwarding header r carries when c, r's
// client, is the socket peer itself (not a trusted proxy's forwarded
// value) and on the authority list; otherwise "". A peer that adds such a
// header is most likely a proxy the relay was not told about (nginx on the
// same host, a service-mesh sidecar on loopback), and then every client it
// forwards is judged by the proxy's address: an authority. Headers are the
// peer's to send, so this is a warning, not a refusal: a peer that is no
// proxy loses nothing, and one that is gets pointed at the fix.
func (s *Server) undeclaredProxy(c auth.Client, r *http.Request) string {
	if c.Forwarded || !c.Known() {
		return ""
	}
	header := ""
	for _, h := range forwardingHeaders {
		if _, ok := r.Header[h]; ok {
			header = h
			break
		}
	}
	if _, ok := r.Header[s.addrs.Header()]; header == "" && ok {
		header = s.addrs.Header()
	}
	if header == "" {
		return ""
	}
	for _, p := range s.auths.Addrs() {
		if p.Contains(c.Addr) {
			return header
		}
	}
	return ""
}

// rateLog lets an event be logged at most once per interval, and counts the
// ones that were not.
type rateLog struct {
	mu     sync.Mutex
	last   time.Time // zero: never logged
	missed int
}

// allow reports whether the event may be logged now and, if so, how many
// were not logged since the last one that was.
func (l *rateLog) allow() (missed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < unknownAddrLogEvery {
		l.missed++
		return 0, false
	}
	missed = l.missed
	l.last, l.missed = now, 0
	return missed, true
}

// hostAllowsAddrAuthority reports whether a request authorised only by its
// address carries a Host a DNS-rebinding page cannot send (auth.Hosts).
func (s *Server) hostAllowsAddrAuthority(r *http.Request) bool {
	return s.hosts.Allowed(r.Host)
}

// warnTrustMistakes logs, once at start, configurations that are almost
// always mistakes because they make the wrong clients authorities.
func (s *Server) warnTrustMistakes() {
	authorities := s.auths.Addrs()
	if len(authorities) == 0 {
		return // address authority is off: no address can be misjudged into one
	}
	for _, p := range s.addrs.Trusted() {
		for _, a := range authorities {
			if p.Overlaps(a) {
				s.log.Warn("a trusted proxy range contains an authority address: any peer in the range may forward that address and be an authority, while the authority itself, connecting directly, is judged by a forwarded address it does not send; keep proxies and authorities apart",
					"RELAY_TRUSTED_PROXIES", p.String(), "RELAY_AUTHORITY_IPS", a.String())
			}
		}
		if wide(p) {
			s.log.Warn("a trusted proxy range is as wide as a private /8 (for IPv6, a /64) while address authority is on: anyone in it (every pod of a cluster, every tenant of a network) can claim an authority address; trust only the proxies' own addresses, or set RELAY_AUTHORITY_IPS=none and use RELAY_AUTHORITY_TOKENS",
				"RELAY_TRUSTED_PROXIES", p.String(), "RELAY_AUTHORITY_IPS", prefixList(authorities))
		}
	}
	for _, o := range s.cfg.Origins {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if one, err := auth.NewOrigins([]string{o}); err == nil && allowsAnySite(one) {
			s.log.Warn("every browser origin may connect while address authority is on: a page on any site, open in a browser on an authority address, can connect as an authority; list your origins or set RELAY_AUTHORITY_IPS=none",
				"RELAY_ORIGINS", o, "RELAY_AUTHORITY_IPS", prefixList(authorities))
			break
		}
	}
}

// anySite are origins no allowlist names on purpose (.invalid is reserved,
// RFC 2606): an entry that allows one of them allows any site ("*", and
// patterns like "http://*" or "*://*" that mean the same).
var anySite = [...]string{"http://origin-probe.invalid", "https://origin-probe.invalid", "http://origin-probe.invalid:8080", "https://origin-probe.invalid:8443"}

func allowsAnySite(o *auth.Origins) bool {
	for _, site := range anySite {
		if o.Allowed(site) {
			return true
		}
	}
	return false
}

// wide reports whether p is at least as wide as a private /8 (10.0.0.0/8)
// or, for IPv6, a whole /64: one IPv6 subnet is already every host of a
// network (a cluster's or a node's pod range is /64 or wider), and a /8 of
// IPv6 is a range nobody writes, so that bound would never warn.
func wide(p netip.Prefix) bool {
	if p.Addr().Is6() {
		return p.Bits() <= 64
	}
	return p.Bits() <= 8
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
