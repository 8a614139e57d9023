package auth

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// Hosts decides which Host headers a request authorised by its address may
// carry. A page that rebinds its own DNS name to the relay's address sends
// that name as Host, and a browser sends no Origin on a same-origin GET, so
// the Host is what tells such a request from a backend's: an IP literal or
// localhost cannot be rebound, a name is allowed only when listed.
type Hosts struct {
	names map[string]struct{}
}

// NewHosts returns Hosts allowing the given names (RELAY_ALLOWED_HOSTS,
// "relay.internal"), besides IP literals and localhost. A name is matched
// case-insensitively, without a port.
func NewHosts(names []string) (*Hosts, error) {
	h := &Hosts{names: map[string]struct{}{}}
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if strings.ContainsAny(n, ":/*[] ") {
			return nil, fmt.Errorf("%q is not a host name (write it without scheme, port or wildcard)", n)
		}
		h.names[normalHost(n)] = struct{}{}
	}
	return h, nil
}

// Allowed reports whether hostport, a request's Host header, is an IP
// literal, localhost or a listed name.
func (h *Hosts) Allowed(hostport string) bool {
	host := hostport
	if hp, _, err := net.SplitHostPort(hostport); err == nil {
		host = hp
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" {
		return false
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = normalHost(host)
	if host == "localhost" {
		return true
	}
	_, ok := h.names[host]
	return ok
}

// normalHost lower-cases a name and drops a final dot ("Relay.Local." is
// "relay.local").
func normalHost(n string) string { return strings.TrimSuffix(strings.ToLower(n), ".") }
