package relay

import (
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/relay-project/relay/relay/internal/auth"
	"github.com/relay-project/relay/relay/internal/httpapi"
	"github.com/relay-project/relay/relay/internal/metrics"
)

// Admission limits, checked before a request is served: header sizes and
// WebSocket connection caps (per relay and per client address).

// retryAfterSeconds is the Retry-After of a WebSocket refused for a
// connection limit: long enough that a reconnect loop does not hammer the
// relay, short enough that a user hardly notices.
const retryAfterSeconds = 5

// headersTooLarge reports whether r's header fields pass
// RELAY_MAX_HEADER_FIELD_BYTES one by one or RELAY_MAX_HEADER_BYTES in all
// (each field counted as "Name: value\r\n", Host included). net/http has
// already read them (cmd/relay caps that read with http.Server's
// MaxHeaderBytes); this bounds the work every later step may do on them,
// such as matching the Origin against patterns.
func (s *Server) headersTooLarge(r *http.Request) bool {
	total := len("Host: \r\n") + len(r.Host)
	for name, values := range r.Header {
		for _, v := range values {
			n := len(name) + len(": \r\n") + len(v)
			if n > s.cfg.MaxHeaderFieldBytes {
				return true
			}
			total += n
		}
	}
	return total > s.cfg.MaxHeaderBytes
}

// refuseHeaders answers 431, in the HTTP API's JSON under /v1/.
func (s *Server) refuseHeaders(w http.ResponseWriter, r *http.Request) {
	s.metrics.Refused.WithLabelValues(metrics.RefusedHeaderTooLarge).Inc()
	msg := "Request header fields too large: at most " + strconv.Itoa(s.cfg.MaxHeaderFieldBytes) +
		" bytes per field and " + strconv.Itoa(s.cfg.MaxHeaderBytes) + " in all."
	w.Header().Set("Connection", "close")
	if strings.HasPrefix(r.URL.Path, "/v1/") && !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		httpapi.WriteError(w, http.StatusRequestHeaderFieldsTooLarge, "header_too_large", msg)
		return
	}
	http.Error(w, "relay: "+msg, http.StatusRequestHeaderFieldsTooLarge)
}

// addrKey is what RELAY_MAX_CONNECTIONS_PER_ADDR counts by: the IPv4
// address, or the IPv6 /64 (one subscriber's network: a host gets a whole
// /64 to pick addresses from).
func addrKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// admit reserves a connection slot for a WebSocket from client before the
// upgrade; unadmit gives it back, with perAddr as admit returned it. On a
// refusal it writes the answer (503 for RELAY_MAX_CONNECTIONS or the
// descriptor reserve, 429 for RELAY_MAX_CONNECTIONS_PER_ADDR, with
// Retry-After) and returns ok false. (Not a release closure: a connection
// would hold its 64 bytes for its whole life.)
// A client from an authority address (the operator's backend) is counted
// against RELAY_MAX_CONNECTIONS but never refused by it, and not counted
// per address (it would use up the allowance of a /64 it shares): otherwise connections from anywhere
// that fill RELAY_MAX_CONNECTIONS would lock out the backend that mints
// every other client's tokens over a WebSocket (the PHP SDK's flow).
func (s *Server) admit(w http.ResponseWriter, client auth.Client) (perAddr, ok bool) {
	addr := client.Addr // the zero address when unknown: such clients share one count
	refuse := func(status int, reason, msg string) (bool, bool) {
		s.metrics.Refused.WithLabelValues(reason).Inc()
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
		http.Error(w, "relay: "+msg, status)
		return false, false
	}
	if !s.fds.roomForWebSocket() {
		return refuse(http.StatusServiceUnavailable, metrics.RefusedDescriptors, "out of file descriptors; try again later")
	}
	// Loopback is exempt only as the socket peer: a forwarded loopback
	// value is a claim, not this machine.
	operator := s.auths.ByAddrAnyProtocol(client)
	perAddr = s.cfg.MaxConnectionsPerAddr > 0 && !operator && (s.cfg.LimitLoopback || client.Forwarded || !addr.IsLoopback())
	key := addrKey(addr)
	s.admitMu.Lock()
	defer s.admitMu.Unlock()
	if s.cfg.MaxConnections > 0 && s.admitted >= s.cfg.MaxConnections && !operator {
		return refuse(http.StatusServiceUnavailable, metrics.RefusedConnections, "at its connection limit; try again later")
	}
	if perAddr && s.perAddr[key] >= s.cfg.MaxConnectionsPerAddr {
		return refuse(http.StatusTooManyRequests, metrics.RefusedConnectionsAddr, "too many connections from your address; try again later")
	}
	s.admitted++
	if perAddr {
		s.perAddr[key]++
	}
	return perAddr, true
}

// unadmit gives back the slot admit reserved for client.
func (s *Server) unadmit(client auth.Client, perAddr bool) {
	s.admitMu.Lock()
	defer s.admitMu.Unlock()
	s.admitted--
	if perAddr {
		key := addrKey(client.Addr)
		if s.perAddr[key]--; s.perAddr[key] == 0 {
			delete(s.perAddr, key)
		}
	}
}
