package auth

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr works out the address a request comes from. The socket peer is
// the answer unless the peer is a trusted proxy; only then is a forwarding
// header read, and only its hops up to the first untrusted one count.
type ClientAddr struct {
	trusted []netip.Prefix
	header  string // canonical header name; "" means X-Forwarded-For
}

// NewClientAddr returns a ClientAddr trusting the given proxies ("10.0.0.0/8",
// "127.0.0.1"). header names a platform header that carries the client
// address as a single value (e.g. "Fly-Client-IP"); empty means the standard
// X-Forwarded-For list.
func NewClientAddr(trustedProxies []string, header string) (*ClientAddr, error) {
	c := &ClientAddr{header: http.CanonicalHeaderKey(strings.TrimSpace(header))}
	for _, e := range trustedProxies {
		if strings.TrimSpace(e) == "" {
			continue
		}
		p, err := ParsePrefix(strings.TrimSpace(e))
		if err != nil {
			return nil, err
		}
		c.trusted = append(c.trusted, p)
	}
	return c, nil
}

func (c *ClientAddr) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// PeerAddr parses an http.Request.RemoteAddr.
func PeerAddr(remoteAddr string) netip.Addr {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}

// Resolve returns the client address of r.
//
// With a platform header configured, a trusted peer's header value is the
// client. With X-Forwarded-For, the list is read from the right: every hop
// that is itself a trusted proxy is skipped and the first untrusted one is
// the client (everything left of it could be forged by the client). A header
// from an untrusted peer is ignored.
func (c *ClientAddr) Resolve(r *http.Request) netip.Addr {
	peer := PeerAddr(r.RemoteAddr)
	if len(c.trusted) == 0 || !c.isTrusted(peer) {
		return peer
	}
	if c.header != "" {
		if a, err := netip.ParseAddr(strings.TrimSpace(r.Header.Get(c.header))); err == nil {
			return a.Unmap()
		}
		return peer
	}
	values := r.Header.Values("X-Forwarded-For")
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return client // garbage: stop at the last good hop
		}
		client = a.Unmap()
		if !c.isTrusted(client) {
			return client
		}
	}
	return client
}
