package relay

import (
	"log/slog"
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
// proxy forwarded no usable client address (the metric counts every one).
const unknownAddrLogEvery = time.Minute

// clientOf resolves r's client address, counting and (once per interval)
// logging a trusted proxy's unusable forwarded value.
func (s *Server) clientOf(r *http.Request) auth.Client {
	c := s.addrs.Resolve(r)
	if !c.Known() {
		s.metrics.UnknownAddrs.WithLabelValues(c.Unknown).Inc()
		s.unknownAddrLog.note(s.log, c.Unknown, r.RemoteAddr, s.addrs.Header())
	}
	return c
}

// rateLog logs an event at most once per interval, with how many were not
// logged since the last time.
type rateLog struct {
	mu     sync.Mutex
	last   time.Time // zero: never logged
	missed int
}

func (l *rateLog) note(log *slog.Logger, reason, peer, header string) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < unknownAddrLogEvery {
		l.missed++
		l.mu.Unlock()
		return
	}
	missed := l.missed
	l.last, l.missed = now, 0
	l.mu.Unlock()
	log.Warn("a trusted proxy forwarded no usable client address: the client is not an authority by address",
		"reason", reason, "peer", peer, "header", header, "not_logged_since_last", missed,
		"see", "RELAY_TRUSTED_PROXIES, RELAY_CLIENT_IP_HEADER; metric relay_client_address_unknown_total")
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
		if strings.TrimSpace(o) == "*" {
			s.log.Warn("every browser origin may connect while address authority is on: a page on any site, open in a browser on an authority address, can connect as an authority; list your origins or set RELAY_AUTHORITY_IPS=none",
				"RELAY_ORIGINS", "*", "RELAY_AUTHORITY_IPS", prefixList(authorities))
			break
		}
	}
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
