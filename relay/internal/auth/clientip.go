package auth

import (
	"fmt"
	"log/slog"
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

// Client is where a request comes from, as ClientAddr.Resolve works it out.
// The zero Client is an unknown address.
type Client struct {
	// Addr is the client's address; the zero Addr when the address is
	// unknown (a trusted proxy sent no usable forwarded value).
	Addr netip.Addr
	// Forwarded reports that Addr is a trusted proxy's forwarded value, not
	// the socket peer.
	Forwarded bool
	// Unknown says why the address is unknown, or is UnknownNone when
	// Addr is set. A byte, not a string: every connection keeps its
	// Client, and beside Forwarded it makes Client 32 bytes, not 48.
	Unknown UnknownReason
}

// UnknownReason is why a trusted proxy's forwarded value is unusable.
type UnknownReason uint8

// The reasons, as Client.Unknown; String gives their metric label.
const (
	UnknownNone      UnknownReason = iota // the address is known, or no proxy is involved
	UnknownMissing                        // no forwarding header at all
	UnknownEmpty                          // the header is there with no value
	UnknownMalformed                      // a value that is not a bare address (ip:port, [v6], garbage, several platform headers)
)

// String returns the reason's label: "missing", "empty", "malformed", or ""
// for UnknownNone.
func (u UnknownReason) String() string {
	switch u {
	case UnknownMissing:
		return "missing"
	case UnknownEmpty:
		return "empty"
	case UnknownMalformed:
		return "malformed"
	}
	return ""
}

// Known reports whether the client's address is known.
func (c Client) Known() bool { return c.Addr.IsValid() }

// String returns the address, or "" when it is unknown.
func (c Client) String() string {
	if !c.Known() {
		return ""
	}
	return c.Addr.String()
}

// LogValue logs the address, or "unknown".
func (c Client) LogValue() slog.Value {
	if !c.Known() {
		return slog.StringValue("unknown")
	}
	return slog.StringValue(c.Addr.String())
}

// NewClientAddr returns a ClientAddr trusting the given proxies ("10.0.0.0/8",
// "127.0.0.1"). header names a platform header that carries the client
// address as a single value (e.g. "Fly-Client-IP"); empty, or
// X-Forwarded-For itself, means the standard X-Forwarded-For list. The
// RFC 7239 Forwarded header is refused: its values ("for=...;proto=...")
// are not bare addresses, so every client would be unknown.
func NewClientAddr(trustedProxies []string, header string) (*ClientAddr, error) {
	name := http.CanonicalHeaderKey(strings.TrimSpace(header))
	switch {
	case name == "X-Forwarded-For":
		// Read as a single value, a proxy chain ("client, proxy") would
		// be malformed: the list rule is what this name means.
		name = ""
	case name == "Forwarded":
		return nil, fmt.Errorf("header %q: the Forwarded header (RFC 7239) is not read; have the proxy send X-Forwarded-For (leave the header empty) or a header with the bare client address", header)
	case name != "" && !isToken(name):
		return nil, fmt.Errorf("header %q is not an HTTP header name", header)
	}
	c := &ClientAddr{header: name}
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

// Trusted returns the trusted proxy ranges.
func (c *ClientAddr) Trusted() []netip.Prefix { return append([]netip.Prefix(nil), c.trusted...) }

// Header returns the header the client address is read from.
func (c *ClientAddr) Header() string {
	if c.header == "" {
		return "X-Forwarded-For"
	}
	return c.header
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

// Resolve returns the client r comes from.
//
// A request from an untrusted peer is the peer, whatever its headers say.
// From a trusted peer, the forwarded value is the client: with a platform
// header configured, that header's single value; with X-Forwarded-For, the
// list read from the right, skipping every hop that is itself a trusted
// proxy, up to the first untrusted one (everything left of it could be
// forged by the client), or the leftmost when every hop is trusted.
//
// A trusted peer that forwards no usable value (no header, an empty one, a
// hop that is not a bare address: "ip:port", "[v6]", garbage) gives an
// unknown address, never the proxy's own: a proxy on loopback would
// otherwise make every client it forwards a loopback client.
func (c *ClientAddr) Resolve(r *http.Request) Client {
	peer := PeerAddr(r.RemoteAddr)
	if len(c.trusted) == 0 || !c.isTrusted(peer) {
		return Client{Addr: peer}
	}
	if c.header != "" {
		values := r.Header.Values(c.header)
		switch {
		case len(values) == 0:
			return Client{Unknown: UnknownMissing}
		case len(values) > 1: // a platform sets one value; more were added on the way
			return Client{Unknown: UnknownMalformed}
		}
		return forwarded(values[0])
	}
	values := r.Header.Values("X-Forwarded-For")
	if len(values) == 0 {
		return Client{Unknown: UnknownMissing}
	}
	var hops []string
	for _, v := range values {
		hops = append(hops, strings.Split(v, ",")...)
	}
	var client Client
	for i := len(hops) - 1; i >= 0; i-- {
		client = forwarded(hops[i])
		if !client.Known() || !c.isTrusted(client.Addr) {
			return client
		}
	}
	return client
}

// forwarded parses one forwarded value. Only a bare address counts, and
// not the unspecified one (0.0.0.0, ::), which names no client.
func forwarded(v string) Client {
	v = strings.TrimSpace(v)
	if v == "" {
		return Client{Unknown: UnknownEmpty}
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" || a.Unmap().IsUnspecified() {
		return Client{Unknown: UnknownMalformed}
	}
	return Client{Addr: a.Unmap(), Forwarded: true}
}

// isToken reports whether s is an RFC 9110 token, the syntax of a header
// name.
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0 {
			continue
		}
		return false
	}
	return s != ""
}
