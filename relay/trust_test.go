package relay_test

// Trust boundaries over real connections: who is an authority by address
// through trusted proxies, RELAY_AUTHORITY_IPS=none, the Host rule against
// DNS rebinding, start-up warnings, and names that do not decode exactly.

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// jsonLog is a debug-level JSON logger writing to logs.
func jsonLog(logs *relaytest.LogBuffer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// httpCall sends one HTTP request to r from local with the given Host ("":
// the relay's address) and headers, and returns the status and body.
func httpCall(t *testing.T, r *relaytest.Relay, local, method, path, host string, h http.Header, body string) (int, string) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, "http://"+r.Addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if host != "" {
		req.Host = host
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// mintsFrom reports whether POST /v1/tokens, sent from local with h and no
// token, gets a token.
func mintsFrom(t *testing.T, r *relaytest.Relay, local string, h http.Header) bool {
	t.Helper()
	st, body := httpCall(t, r, local, http.MethodPost, "/v1/tokens", "", h, `{"channel":"c","protocol":"p","clientmode":0}`)
	if st != http.StatusCreated && st != http.StatusUnauthorized {
		t.Fatalf("POST /v1/tokens: %d %s, want 201 or 401", st, body)
	}
	return st == http.StatusCreated
}

func TestForwardedAddressRules(t *testing.T) {
	const (
		sidecar   = "127.0.0.5"    // a trusted proxy on loopback, as a sidecar is
		backend   = "198.51.100.7" // an authority address, reached through the proxy
		outsider  = "203.0.113.9"
		unknownLn = "a trusted proxy forwarded no usable client address"
	)
	type tc struct {
		name    string
		values  []string // the header's values; nil: no header
		want    bool     // an authority
		unknown bool     // the address is unknown, and counted
	}
	// Every unusable value through a trusted proxy means "address unknown",
	// which is never an authority, and never the proxy's own (loopback)
	// address; a forwarded loopback address is never one either.
	common := []tc{
		{"missing", nil, false, true},
		{"empty", []string{""}, false, true},
		{"blank", []string{"  "}, false, true},
		{"ip:port", []string{backend + ":443"}, false, true},
		{"bracketed v6", []string{"[2001:db8::1]"}, false, true},
		{"bracketed v6 with port", []string{"[::1]:80"}, false, true},
		{"garbage", []string{"garbage"}, false, true},
		{"unspecified", []string{"0.0.0.0"}, false, true},
		{"forwarded 127.0.0.1", []string{"127.0.0.1"}, false, false},
		{"forwarded ::1", []string{"::1"}, false, false},
		{"forwarded mapped loopback", []string{"::ffff:127.0.0.1"}, false, false},
		{"forwarded outsider", []string{outsider}, false, false},
		{"forwarded authority", []string{backend}, true, false},
	}
	xff := append(append([]tc{}, common...),
		tc{"garbage left of a trusted hop", []string{backend + ", garbage, " + sidecar}, false, true},
		tc{"empty hop", []string{backend + ", , " + sidecar}, false, true},
		tc{"inner trusted hop skipped", []string{backend + ", " + sidecar}, true, false},
		tc{"several headers", []string{backend, sidecar}, true, false},
		tc{"forged left of the client", []string{backend + ", " + outsider}, false, false},
		tc{"loopback behind the proxy", []string{"127.0.0.1, " + sidecar}, false, false},
	)
	platform := append(append([]tc{}, common...),
		tc{"header twice", []string{backend, backend}, false, true},
	)
	for _, header := range []struct {
		name   string
		config string // RELAY_CLIENT_IP_HEADER
		cases  []tc
	}{
		{"X-Forwarded-For", "", xff},
		// Naming the standard header is the same as leaving it empty: a
		// proxy chain read as one value would make every client unknown.
		{"X-Forwarded-For", "x-forwarded-for", xff},
		{"Fly-Client-IP", "Fly-Client-IP", platform},
	} {
		t.Run(header.name+"/"+header.config, func(t *testing.T) {
			logs := &relaytest.LogBuffer{}
			r := startRelay(t, func(c *relay.Config) {
				// The sidecar's own loopback address is an authority, as
				// loopback is by default: the case where failing open to
				// the proxy's address made every client an authority.
				c.AuthorityIPs = []string{authAddr, sidecar, "::1", backend}
				c.TrustedProxies = []string{sidecar}
				c.ClientIPHeader = header.config
				c.Logger = jsonLog(logs)
			})
			for _, tc := range header.cases {
				t.Run(tc.name, func(t *testing.T) {
					h := http.Header{}
					for _, v := range tc.values {
						h.Add(header.name, v)
					}
					if got := isAuthorityFrom(t, r, sidecar, h); got != tc.want {
						t.Errorf("WebSocket from the trusted proxy with %s %q: authority %v, want %v", header.name, tc.values, got, tc.want)
					}
					if got := mintsFrom(t, r, sidecar, h); got != tc.want {
						t.Errorf("POST /v1/tokens from the trusted proxy with %s %q: token %v, want %v", header.name, tc.values, got, tc.want)
					}
				})
			}
			// From an untrusted peer the header is ignored either way: a
			// guest claiming loopback stays a guest, and the authority on
			// the socket's own loopback stays one whatever it sends.
			for _, v := range []string{"127.0.0.1", backend, "garbage"} {
				h := http.Header{header.name: {v}}
				if isAuthorityFrom(t, r, guestAddr, h) || mintsFrom(t, r, guestAddr, h) {
					t.Errorf("an untrusted peer sending %s: %s became an authority", header.name, v)
				}
				if !isAuthorityFrom(t, r, authAddr, h) || !mintsFrom(t, r, authAddr, h) {
					t.Errorf("the loopback peer itself sending %s: %s is no longer an authority", header.name, v)
				}
			}

			// Each unusable value was counted; the log says so once per
			// minute, naming the reason and the header.
			_, metrics := httpGetAll(t, "http://"+r.Addr+"/metrics")
			var counted float64
			for _, reason := range []string{"missing", "empty", "malformed"} {
				n := metric(t, metrics, `relay_client_address_unknown_total{reason="`+reason+`"}`)
				if n == 0 {
					t.Errorf("no request counted as reason %s", reason)
				}
				counted += n
			}
			unusable := 0
			for _, tc := range header.cases {
				if tc.unknown {
					unusable++
				}
			}
			if counted != float64(2*unusable) {
				t.Errorf("%v unusable values counted, want %d (%d cases, a WebSocket and an HTTP request each)", counted, 2*unusable, unusable)
			}
			if got := logs.Lines(unknownLn); len(got) != 1 {
				t.Errorf("%d log lines about unusable forwarded values, want 1 per minute:\n%s", len(got), strings.Join(got, "\n"))
			} else if !strings.Contains(strings.ToLower(got[0]), strings.ToLower(header.name)) || !strings.Contains(got[0], `"reason":"missing"`) {
				t.Errorf("the log line names neither the header nor the reason: %s", got[0])
			}
		})
	}
}

// TestUndeclaredProxyWarns: nginx on the relay's host, in front of it but
// not listed in RELAY_TRUSTED_PROXIES, makes every client it forwards a
// loopback client, so an authority. Its forwarding header gives it away:
// each such request is counted by header, and logged once a minute naming
// the fix. Nothing changes for requests without the header, from addresses
// that are no authority, through a trusted proxy, or with address authority
// off.
func TestUndeclaredProxyWarns(t *testing.T) {
	const line = "a request straight from an authority address carries a forwarding header"
	counted := func(t *testing.T, r *relaytest.Relay, header string) float64 {
		t.Helper()
		_, body := httpGetAll(t, "http://"+r.Addr+"/metrics")
		sample := `relay_undeclared_proxy_requests_total{header="` + header + `"} `
		for l := range strings.SplitSeq(body, "\n") {
			if v, ok := strings.CutPrefix(l, sample); ok {
				n, _ := strconv.ParseFloat(v, 64)
				return n
			}
		}
		return 0
	}
	proxied := map[string]http.Header{
		"X-Forwarded-For": {"X-Forwarded-For": {"203.0.113.9"}},
		"Forwarded":       {"Forwarded": {"for=203.0.113.9"}},
		"X-Real-Ip":       {"X-Real-Ip": {"203.0.113.9"}},
	}

	logs := &relaytest.LogBuffer{}
	r := startRelay(t, func(c *relay.Config) { c.Logger = jsonLog(logs) })
	for header, h := range proxied {
		// The behaviour is the documented one: the peer is the client.
		if !isAuthorityFrom(t, r, authAddr, h) || !mintsFrom(t, r, authAddr, h) {
			t.Fatalf("the loopback peer sending %s is no longer an authority", header)
		}
		if n := counted(t, r, header); n != 2 {
			t.Errorf("%s from an authority address: counted %v, want 2 (a WebSocket and an HTTP request)", header, n)
		}
		// Not counted: no header, or a peer that is no authority.
		isAuthorityFrom(t, r, authAddr, nil)
		isAuthorityFrom(t, r, guestAddr, h)
		mintsFrom(t, r, guestAddr, h)
		if n := counted(t, r, header); n != 2 {
			t.Errorf("%s: counted %v after requests without the header or from a guest, want still 2", header, n)
		}
	}
	if got := logs.Lines(line); len(got) != 1 {
		t.Errorf("%d log lines about an undeclared proxy, want 1 per minute:\n%s", len(got), strings.Join(got, "\n"))
	} else if !strings.Contains(got[0], "RELAY_TRUSTED_PROXIES") || !strings.Contains(got[0], `"peer":"`+authAddr+`"`) {
		t.Errorf("the log line names neither the peer nor the fix: %s", got[0])
	}

	// Through a trusted proxy the header is expected, and with address
	// authority off no address can be misjudged: neither is counted.
	for name, mutate := range map[string]func(*relay.Config){
		"trusted proxy": func(c *relay.Config) { c.TrustedProxies = []string{authAddr} },
		"none":          func(c *relay.Config) { c.AuthorityIPs = []string{"none"} },
	} {
		logs := &relaytest.LogBuffer{}
		r := startRelay(t, func(c *relay.Config) { mutate(c); c.Logger = jsonLog(logs) })
		isAuthorityFrom(t, r, authAddr, proxied["X-Forwarded-For"])
		if n := counted(t, r, "X-Forwarded-For"); n != 0 || len(logs.Lines(line)) != 0 {
			t.Errorf("%s: counted %v and logged %d lines, want none", name, n, len(logs.Lines(line)))
		}
	}
}

func TestAuthorityIPsNone(t *testing.T) {
	t.Setenv("RELAY_AUTHORITY_IPS", "none")
	t.Setenv("RELAY_AUTHORITY_TOKENS", "backend-secret")
	cfg, err := relay.LoadConfig()
	if err != nil {
		t.Fatalf("RELAY_AUTHORITY_IPS=none refused: %v", err)
	}
	cfg.Logger = relaytest.Config(t).Logger
	r := relaytest.Start(t, cfg, "")
	if isAuthorityFrom(t, r, authAddr, nil) {
		t.Error("with RELAY_AUTHORITY_IPS=none, a loopback WebSocket is still an authority")
	}
	if mintsFrom(t, r, authAddr, nil) {
		t.Error("with RELAY_AUTHORITY_IPS=none, POST /v1/tokens from loopback still gets a token")
	}
	// Tokens still work: none turns off addresses, not authority.
	st, body := httpCall(t, r, authAddr, http.MethodPost, "/v1/tokens", "", http.Header{"Authorization": {"Bearer backend-secret"}}, `{"channel":"c","protocol":"p","clientmode":0}`)
	if st != http.StatusCreated {
		t.Errorf("with a token: %d %s, want 201", st, body)
	}
	if !isAuthorityWithToken(t, r, "backend-secret", "p") {
		t.Error("with RELAY_AUTHORITY_IPS=none, the authority token no longer works on the WebSocket")
	}

	// none with addresses, or set but empty (which would silently mean the
	// loopback default), is refused at start, naming the variable.
	for _, v := range []string{"none,127.0.0.1", "", " "} {
		t.Setenv("RELAY_AUTHORITY_IPS", v)
		cfg, err := relay.LoadConfig()
		if err == nil {
			cfg.Logger = relaytest.Config(t).Logger
			_, err = relay.New(cfg)
		}
		if err == nil || !strings.Contains(err.Error(), "RELAY_AUTHORITY_IPS") || !strings.Contains(err.Error(), "none") {
			t.Errorf("RELAY_AUTHORITY_IPS=%q: %v, want an error naming the variable and none", v, err)
		}
	}
}

// TestClientIPHeaderForwardedRefused: the RFC 7239 Forwarded header carries
// "for=..." values, never a bare address, so naming it would make every
// client unknown without a word; the relay refuses it at start instead.
// TestUnknownAddressCountedWithToken: behind a trusted proxy that forwards
// nothing usable, a backend's request with its authority token is served,
// and still counted, so the metric shows a broken proxy setup on a platform
// where every backend uses a token (Cloud Run, Kubernetes).
func TestUnknownAddressCountedWithToken(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) {
		c.AuthorityIPs = []string{"none"}
		c.AuthorityTokens = []string{"backend-secret"}
		c.TrustedProxies = []string{authAddr}
	})
	st, body := httpCall(t, r, authAddr, http.MethodPost, "/v1/tokens", "", http.Header{"Authorization": {"Bearer backend-secret"}}, `{"channel":"c","protocol":"p"}`)
	if st != http.StatusCreated {
		t.Fatalf("POST /v1/tokens with the token: %d %s", st, body)
	}
	_, metrics := httpGetAll(t, "http://"+r.Addr+"/metrics")
	if n := metric(t, metrics, `relay_client_address_unknown_total{reason="missing"}`); n != 1 {
		t.Errorf("counted %v requests without a forwarded address, want 1", n)
	}
}

// TestUnixSocketPeer: a relay served on a Unix socket (a library user's
// choice) sees peers without an IP address. They are no authority by
// address, and not "a trusted proxy that forwarded nothing": nothing is
// counted or logged as such.
func TestUnixSocketPeer(t *testing.T) {
	logs := &relaytest.LogBuffer{}
	cfg := relaytest.Config(t)
	cfg.Logger = jsonLog(logs)
	cfg.TrustedProxies = []string{"127.0.0.1"}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := t.TempDir() + "/relay.sock"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Skipf("no Unix sockets here: %v", err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()
	defer srv.Shutdown(context.Background())
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	get := func(p string) (int, string) {
		resp, err := hc.Get("http://localhost" + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get("/v1/presence?channel=c&protocol=p"); st != http.StatusUnauthorized {
		t.Fatalf("GET /v1/presence from a Unix socket peer: %d %s, want 401 (no authority by address)", st, body)
	}
	if _, metrics := get("/metrics"); strings.Contains(metrics, "relay_client_address_unknown_total{") {
		t.Errorf("a Unix socket peer was counted as a trusted proxy's unusable address:\n%s", metrics)
	}
	if got := logs.Lines("a trusted proxy forwarded no usable client address"); len(got) != 0 {
		t.Errorf("a Unix socket peer was logged as a trusted proxy's unusable address: %s", got[0])
	}
}

func TestClientIPHeaderForwardedRefused(t *testing.T) {
	for _, v := range []string{"Forwarded", "X Real IP"} {
		t.Setenv("RELAY_CLIENT_IP_HEADER", v)
		cfg, err := relay.LoadConfig()
		if err == nil {
			cfg.Logger = relaytest.Config(t).Logger
			_, err = relay.New(cfg)
		}
		if err == nil || !strings.Contains(err.Error(), "RELAY_CLIENT_IP_HEADER") {
			t.Errorf("RELAY_CLIENT_IP_HEADER=%q: %v, want an error naming the variable", v, err)
		}
	}
}

func TestDNSRebindingCannotReadPresence(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) {
		c.AuthorityTokens = []string{"backend-secret"}
		c.AllowedHosts = []string{"relay.internal"}
	})
	// A member whose extra is what the attacker wants.
	a := authority(t, r)
	tok := grant(t, a, "room", "chat", 0, `{"email":"ann@example.com"}`, false)
	join(t, guest(t, r), "room", "chat", tok)

	const presence = "/v1/presence?channel=room&protocol=chat"
	port := r.Addr[strings.LastIndex(r.Addr, ":")+1:]
	bearer := http.Header{"Authorization": {"Bearer backend-secret"}}
	wrong := http.Header{"Authorization": {"Bearer not-the-secret"}}
	for _, tc := range []struct {
		name, host string
		h          http.Header
		want       int
	}{
		// What a browser sends after rebinding evil.example to 127.0.0.1:
		// its own name as Host, and no Origin on a same-origin GET.
		{"rebound name", "evil.example:" + port, nil, http.StatusForbidden},
		{"rebound name without port", "evil.example", nil, http.StatusForbidden},
		{"rebound name posing as localhost", "localhost.evil.example:" + port, nil, http.StatusForbidden},
		{"rebound name with a junk token", "evil.example:" + port, wrong, http.StatusForbidden},
		{"IP literal", "127.0.0.1:" + port, nil, http.StatusOK},
		{"IPv6 literal", "[::1]:" + port, nil, http.StatusOK},
		{"localhost", "localhost:" + port, nil, http.StatusOK},
		{"allowed host", "Relay.Internal:" + port, nil, http.StatusOK},
		{"token with a foreign Host", "evil.example:" + port, bearer, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, body := httpCall(t, r, authAddr, http.MethodGet, presence, tc.host, tc.h, "")
			if st != tc.want {
				t.Fatalf("GET %s with Host %s: %d %s, want %d", presence, tc.host, st, body, tc.want)
			}
			if tc.want == http.StatusForbidden {
				if !strings.Contains(body, `"errorcode":"host_not_allowed"`) || strings.Contains(body, "ann@example.com") {
					t.Fatalf("refusal %s: want errorcode host_not_allowed and no member data", body)
				}
			} else if !strings.Contains(body, "ann@example.com") {
				t.Fatalf("answer %s lacks the member", body)
			}
		})
	}
	// The other endpoints follow the same rule.
	for path, req := range map[string]string{
		"/v1/tokens":  `{"channel":"room","protocol":"chat","clientmode":0}`,
		"/v1/publish": `{"channel":"room","protocol":"chat","cmd":"x"}`,
	} {
		st, body := httpCall(t, r, authAddr, http.MethodPost, path, "evil.example:"+port, nil, req)
		if st != http.StatusForbidden || !strings.Contains(body, "host_not_allowed") {
			t.Errorf("POST %s with a rebound Host: %d %s, want 403 host_not_allowed", path, st, body)
		}
	}
}

func TestStartupWarnsAboutTrustMistakes(t *testing.T) {
	start := func(mutate func(*relay.Config)) *relaytest.LogBuffer {
		logs := &relaytest.LogBuffer{}
		cfg := relaytest.Config(t)
		cfg.Logger = jsonLog(logs)
		mutate(&cfg)
		relaytest.Start(t, cfg, "")
		return logs
	}
	logs := start(func(c *relay.Config) {
		c.AuthorityIPs = []string{"127.0.0.1", "10.1.2.3"}
		c.TrustedProxies = []string{"10.0.0.0/8", "fd00:10:244::/56"}
		c.Origins = []string{"*"}
	})
	for _, want := range [][]string{
		{"trusted proxy range contains an authority address", `"RELAY_TRUSTED_PROXIES":"10.0.0.0/8"`, `"RELAY_AUTHORITY_IPS":"10.1.2.3/32"`},
		{"as wide as a private /8", `"RELAY_TRUSTED_PROXIES":"10.0.0.0/8"`, "RELAY_AUTHORITY_IPS"},
		// An IPv6 pod range is /64 or wider: as wide, for IPv6.
		{"as wide as a private /8", `"RELAY_TRUSTED_PROXIES":"fd00:10:244::/56"`, "RELAY_AUTHORITY_IPS"},
		{"every browser origin may connect", `"RELAY_ORIGINS":"*"`, "RELAY_AUTHORITY_IPS"},
	} {
		if got := logs.Lines(append([]string{`"level":"WARN"`}, want...)...); len(got) != 1 {
			t.Errorf("%d warnings with %q, want 1; the log:\n%s", len(got), want, strings.Join(logs.Lines(""), "\n"))
		}
	}
	// A pattern that matches every site is the same mistake as "*".
	for _, any := range []string{"http://*", "*://*", "https://*:*"} {
		logs := start(func(c *relay.Config) { c.Origins = []string{"https://app.example.com", any} })
		if got := logs.Lines(`"level":"WARN"`, "every browser origin may connect", `"RELAY_ORIGINS":"`+any+`"`); len(got) != 1 {
			t.Errorf("RELAY_ORIGINS with %s: %d warnings, want 1; the log:\n%s", any, len(got), strings.Join(logs.Lines(""), "\n"))
		}
	}
	// With address authority off, none of these can make anyone an
	// authority, so there is nothing to warn about; nor with the default.
	for name, mutate := range map[string]func(*relay.Config){
		"none": func(c *relay.Config) {
			c.AuthorityIPs = []string{"none"}
			c.TrustedProxies = []string{"10.0.0.0/8"}
			c.Origins = []string{"*"}
		},
		"default": func(*relay.Config) {},
		"one site's origins": func(c *relay.Config) {
			c.Origins = []string{"https://app.example.com", "https://*.example.com", "http://localhost:*"}
		},
		"narrow proxies": func(c *relay.Config) {
			c.TrustedProxies = []string{"10.0.3.7", "10.0.4.0/24", "fd00:10:244::12", "fd00:10:244:1::/120"}
		},
	} {
		if got := start(mutate).Lines(`"level":"WARN"`); len(got) != 0 {
			t.Errorf("%s: unexpected warnings:\n%s", name, strings.Join(got, "\n"))
		}
	}
}

func TestNamesMustDecodeExactly(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	// A lone surrogate escape used to become U+FFFD, so these four wire
	// names were one channel.
	for _, tc := range []struct {
		field, value, code string
	}{
		{"channel", `"\ud800"`, "missing_invalid_channel"},
		{"channel", `"room\udfff"`, "missing_invalid_channel"},
		{"channel", `"\ud800\u0041"`, "missing_invalid_channel"},
		{"channel", `"\udc00\ud800"`, "missing_invalid_channel"},
		{"protocol", `"\uDBFF"`, "missing_invalid_protocol"},
	} {
		other := map[string]string{"channel": `"room"`, "protocol": `"chat"`}
		other[tc.field] = tc.value
		for _, cmd := range []string{"JOIN", "GRANT"} {
			a.Send(`{"cmd":"` + cmd + `","channel":` + other["channel"] + `,"protocol":` + other["protocol"] + `,"clientmode":0,"extra":{}}`)
			expectError(t, a, 0, tc.code)
		}
		body := `{"channel":` + other["channel"] + `,"protocol":` + other["protocol"] + `,"cmd":"x"}`
		st, resp := httpCall(t, r, authAddr, http.MethodPost, "/v1/publish", "", nil, body)
		if st != http.StatusBadRequest || !strings.Contains(resp, tc.code) {
			t.Errorf("POST /v1/publish %s: %d %s, want 400 %s", body, st, resp, tc.code)
		}
		body = `{"channel":` + other["channel"] + `,"protocol":` + other["protocol"] + `}`
		st, resp = httpCall(t, r, authAddr, http.MethodPost, "/v1/tokens", "", nil, body)
		if st != http.StatusBadRequest || !strings.Contains(resp, tc.code) {
			t.Errorf("POST /v1/tokens %s: %d %s, want 400 %s", body, st, resp, tc.code)
		}
	}
	// Escapes that decode to characters are names like any other: U+FFFD
	// itself, and a surrogate pair, which is the same name as its UTF-8.
	fffd := join(t, a, "\ufffd", "chat", "")
	pair := authority(t, r)
	a.Send(`{"cmd":"JOIN","channel":"\ud83d\ude00","protocol":"chat"}`)
	emoji := a.NextMap()
	pair.Send(`{"cmd":"JOIN","channel":"😀","protocol":"chat"}`)
	same := pair.NextMap()
	if emoji["cmd"] != "JOINED" || same["cmd"] != "JOINED" || emoji["channel"] != same["channel"] || emoji["channel"] == fffd["channel"] {
		t.Fatalf("JOINED %v, %v and %v: want the surrogate pair and its UTF-8 to be one channel, apart from U+FFFD", fffd, emoji, same)
	}
}
