package auth

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestAuthorities(t *testing.T) {
	a, err := NewAuthorities([]string{"10.0.0.0/8", "192.0.2.1#chat|jobs", "::ffff:198.51.100.1", "2001:db8::/32"}, []string{"t1", "t2#chat"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr, proto string
		want        bool
	}{
		{"10.9.9.9", "x", true}, {"11.0.0.1", "x", false},
		{"192.0.2.1", "chat", true}, {"192.0.2.1", "ops", false},
		{"198.51.100.1", "x", true}, {"::ffff:10.1.1.1", "x", true},
		{"2001:db8::5", "x", true}, {"2001:db9::5", "x", false},
	} {
		if got := a.ByAddr(Client{Addr: netip.MustParseAddr(tc.addr)}, tc.proto); got != tc.want {
			t.Errorf("ByAddr(%s, %s) = %v", tc.addr, tc.proto, got)
		}
	}
	for _, tc := range []struct {
		tok, proto string
		want       bool
	}{{"t1", "x", true}, {"t2", "chat", true}, {"t2", "x", false}, {"t3", "x", false}, {"", "x", false}, {"t", "x", false}} {
		if got := a.ByToken(tc.tok, tc.proto); got != tc.want {
			t.Errorf("ByToken(%s, %s) = %v", tc.tok, tc.proto, got)
		}
	}
}

func TestBadEntriesNameTheProblemButNotTheToken(t *testing.T) {
	if _, err := NewAuthorities([]string{"10.0.0.300"}, nil); err == nil {
		t.Fatal("bad address accepted")
	}
	_, err := NewAuthorities(nil, []string{"supersecret#"})
	if err == nil {
		t.Fatal("empty protocol list accepted")
	}
	if got := err.Error(); contains(got, "supersecret") {
		t.Fatalf("error reveals the token: %s", got)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestOriginGlob(t *testing.T) {
	o, err := NewOrigins([]string{"https://*.example.com", "http://localhost:*", "http://[::1]:*"})
	if err != nil {
		t.Fatal(err)
	}
	for origin, want := range map[string]bool{
		"https://a.example.com":         true,
		"https://example.com":           false,
		"https://a.example.com.evil.io": false,
		"https://evil.io/.example.com":  false,
		"http://localhost:1":            true,
		"http://localhost":              false,
		"http://[::1]:80":               true,
	} {
		if got := o.Allowed(origin); got != want {
			t.Errorf("Allowed(%s) = %v", origin, got)
		}
	}
	if _, err := NewOrigins([]string{"example.com"}); err == nil {
		t.Error("an origin without a scheme was accepted")
	}
}

func TestResolveRemoteAddrIPv6(t *testing.T) {
	c, _ := NewClientAddr(nil, "")
	r := &http.Request{RemoteAddr: "[::1]:5555", Header: http.Header{}}
	if got := c.Resolve(r); got != (Client{Addr: netip.MustParseAddr("::1")}) {
		t.Fatalf("got %v", got)
	}
}
