package auth

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func TestNoneTurnsAddressAuthorityOff(t *testing.T) {
	for _, list := range [][]string{{"none"}, {" NONE "}, {"none", ""}} {
		a, err := NewAuthorities(list, nil)
		if err != nil {
			t.Fatalf("%q: %v", list, err)
		}
		if len(a.Addrs()) != 0 || a.ByAddr(Client{Addr: netip.MustParseAddr("127.0.0.1")}, "p") {
			t.Errorf("%q: loopback is still an authority", list)
		}
	}
	if _, err := NewAuthorities([]string{"none", "127.0.0.1"}, nil); err == nil || !strings.Contains(err.Error(), "none") {
		t.Errorf("none with an address: %v, want an error naming none", err)
	}
}

func TestForwardedLoopbackIsNeverAnAuthority(t *testing.T) {
	a, _ := NewAuthorities([]string{"127.0.0.0/8", "::1", "203.0.113.7"}, nil)
	for _, tc := range []struct {
		c    Client
		want bool
	}{
		{Client{Addr: netip.MustParseAddr("127.0.0.1")}, true},
		{Client{Addr: netip.MustParseAddr("127.0.0.1"), Forwarded: true}, false},
		{Client{Addr: netip.MustParseAddr("::1"), Forwarded: true}, false},
		{Client{Addr: netip.MustParseAddr("203.0.113.7"), Forwarded: true}, true},
		{Client{Unknown: UnknownMissing}, false},
	} {
		if got := a.ByAddr(tc.c, "p"); got != tc.want {
			t.Errorf("ByAddr(%+v) = %v, want %v", tc.c, got, tc.want)
		}
	}
}

func TestHosts(t *testing.T) {
	h, err := NewHosts([]string{"Relay.Internal", "backend.svc.cluster.local."})
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"127.0.0.1:7328": true, "127.0.0.1": true, "[::1]:7328": true, "[::1]": true, "10.1.2.3": true,
		"localhost": true, "LOCALHOST:7328": true, "localhost.": true,
		"relay.internal": true, "relay.internal:80": true, "backend.svc.cluster.local": true,
		"evil.example": false, "evil.example:7328": false, "localhost.evil.example": false,
		"relay.internal.evil.example": false, "": false, "[]:80": false,
	} {
		if got := h.Allowed(host); got != want {
			t.Errorf("Allowed(%q) = %v, want %v", host, got, want)
		}
	}
	for _, bad := range []string{"*.example.com", "https://relay.internal", "relay.internal:80"} {
		if _, err := NewHosts([]string{bad}); err == nil {
			t.Errorf("NewHosts(%q) accepted", bad)
		}
	}
}

func TestClientIPHeaderNames(t *testing.T) {
	for header, want := range map[string]string{
		"": "X-Forwarded-For", "X-Forwarded-For": "X-Forwarded-For", " x-forwarded-for ": "X-Forwarded-For",
		"fly-client-ip": "Fly-Client-Ip", "CF-Connecting-IP": "Cf-Connecting-Ip",
	} {
		c, err := NewClientAddr([]string{"10.0.0.0/8"}, header)
		if err != nil {
			t.Errorf("%q refused: %v", header, err)
			continue
		}
		if c.Header() != want {
			t.Errorf("%q reads %s, want %s", header, c.Header(), want)
		}
	}
	// X-Forwarded-For named is the list, read from the right.
	c, _ := NewClientAddr([]string{"10.0.0.0/8"}, "X-Forwarded-For")
	r := &http.Request{RemoteAddr: "10.0.0.1:4000", Header: http.Header{"X-Forwarded-For": {"203.0.113.1, 198.51.100.2, 10.0.0.3"}}}
	if got := c.Resolve(r); got.Addr != netip.MustParseAddr("198.51.100.2") {
		t.Errorf("X-Forwarded-For named: client %+v, want the rightmost untrusted hop 198.51.100.2", got)
	}
	for _, bad := range []string{"Forwarded", "forwarded", "X Real IP", "X-Real-IP:", "(x)"} {
		if _, err := NewClientAddr(nil, bad); err == nil {
			t.Errorf("%q accepted as the client address header", bad)
		}
	}
}

// FuzzResolve checks the forwarded-address rules on any headers: an
// untrusted peer is always itself; a trusted peer's client is a value it
// forwarded, or unknown, never the proxy itself by default; and the result
// never makes a forwarded loopback address an authority. Each input is the
// socket peer, the header's values (one per line) and the platform header
// (empty: X-Forwarded-For).
func FuzzResolve(f *testing.F) {
	// The seed corpus is testdata/fuzz/FuzzResolve: one file per case the
	// rules name (missing, empty, ip:port, [v6], garbage, loopback, ...).
	authorities, _ := NewAuthorities([]string{"127.0.0.0/8", "::1", "10.0.0.0/8"}, nil)
	f.Fuzz(func(t *testing.T, remote, value, header string) {
		ca, err := NewClientAddr([]string{"10.0.0.0/8", "127.0.0.1", "::1"}, header)
		if err != nil {
			if header == "" {
				t.Fatal(err)
			}
			t.Skip() // not a header name, or Forwarded: refused at start
		}
		r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
		name := ca.Header()
		for v := range strings.SplitSeq(value, "\n") {
			r.Header.Add(name, v)
		}
		if value == "" {
			r.Header.Del(name)
		}
		got := ca.Resolve(r)
		if again := ca.Resolve(r); again != got {
			t.Fatalf("Resolve is not deterministic: %+v then %+v", got, again)
		}
		peer := PeerAddr(remote)
		if !ca.isTrusted(peer) {
			if got != (Client{Addr: peer}) {
				t.Fatalf("untrusted peer %s resolved to %+v, want the peer", peer, got)
			}
			return
		}
		if got.Known() == (got.Unknown != UnknownNone) {
			t.Fatalf("%+v: known and a reason at once, or neither", got)
		}
		if !got.Known() {
			return
		}
		if !got.Forwarded {
			t.Fatalf("trusted peer %s: client %+v is not a forwarded value", peer, got)
		}
		sent := false
		for _, v := range r.Header.Values(name) {
			for hop := range strings.SplitSeq(v, ",") {
				a, err := netip.ParseAddr(strings.TrimSpace(hop))
				sent = sent || err == nil && a.Unmap() == got.Addr
			}
		}
		if !sent {
			t.Fatalf("client %s is not a value the proxy forwarded (%q)", got.Addr, value)
		}
		if got.Addr.IsLoopback() && authorities.ByAddr(got, "p") {
			t.Fatalf("a forwarded loopback address %s is an authority", got.Addr)
		}
	})
}
