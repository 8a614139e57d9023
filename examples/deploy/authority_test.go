package deploy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay"
)

// checkAuthority checks what must hold on a shared platform (Cloud Run,
// Fly.io, Kubernetes), where other tenants, pods or machines share the
// network: address authority is off (RELAY_AUTHORITY_IPS=none), backends
// use an authority token from the platform's secret store, and, on a real
// relay loaded with the manifest's own configuration, nobody is an
// authority by address, whatever peer it connects from (a trusted proxy, a
// sidecar on loopback, another pod) and whatever address it claims.
func checkAuthority(t checker, s site, cfg relay.Config) {
	t.Helper()
	if v := s.env["RELAY_AUTHORITY_IPS"]; !strings.EqualFold(strings.TrimSpace(v), "none") {
		t.Errorf("RELAY_AUTHORITY_IPS=%q: on a shared platform set it to none, and give backends an authority token", v)
	}
	if !s.secrets["RELAY_AUTHORITY_TOKENS"] && !s.secrets["RELAY_AUTHORITY_TOKENS_FILE"] {
		t.Errorf("no authority token from the platform's secret store (RELAY_AUTHORITY_TOKENS or RELAY_AUTHORITY_TOKENS_FILE)")
	}
	if _, set := s.env["RELAY_AUTHORITY_TOKENS"]; set && !s.secrets["RELAY_AUTHORITY_TOKENS"] {
		t.Errorf("RELAY_AUTHORITY_TOKENS is written in the manifest: take it from the secret store")
	}
	noAuthorityByAddress(t, cfg)
}

// noAuthorityByAddress runs a relay with cfg and asks, from every peer a
// pod could be, with and without a forwarded claim to be 127.0.0.1 or ::1,
// for a token (POST /v1/tokens) and for an authority's JOIN. Every request
// must be refused. An authority token must still work, so the refusals are
// the address rules and not a broken relay.
func noAuthorityByAddress(t checker, cfg relay.Config) {
	t.Helper()
	cfg.Logger = discardLogger()
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatalf("the relay refuses this configuration: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	defer srv.Shutdown(ctx)

	// The peers: the first address of every trusted proxy range, the
	// container's own loopback (a sidecar), and some other pod.
	peers := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.12.0.7")}
	for _, p := range cfg.TrustedProxies {
		if pr, err := netip.ParsePrefix(p); err == nil {
			a := pr.Masked().Addr()
			if !pr.IsSingleIP() {
				a = a.Next()
			}
			peers = append(peers, a)
		} else if a, err := netip.ParseAddr(p); err == nil {
			peers = append(peers, a)
		}
	}
	claims := []http.Header{{}, {"X-Forwarded-For": {"127.0.0.1"}}, {"X-Forwarded-For": {"::1"}}}
	if cfg.ClientIPHeader != "" {
		claims = append(claims, http.Header{http.CanonicalHeaderKey(cfg.ClientIPHeader): {"127.0.0.1"}})
	}
	token := authorityToken(t, cfg)
	for _, peer := range peers {
		base := servePeer(t, srv, peer)
		for _, h := range claims {
			if st := postToken(t, base, h, ""); st == http.StatusCreated {
				t.Errorf("from %s with %v: POST /v1/tokens gave a token without an authority token", peer, h)
			}
			if joinedAsAuthority(t, base, h) {
				t.Errorf("from %s with %v: a JOIN without a token was accepted, as an authority's", peer, h)
			}
		}
		if token != "" {
			if st := postToken(t, base, nil, token); st != http.StatusCreated {
				t.Errorf("from %s: POST /v1/tokens with the authority token answered %d, want 201", peer, st)
			}
		}
	}
}

// authorityToken returns the first authority token cfg configures.
func authorityToken(t checker, cfg relay.Config) string {
	tokens := cfg.AuthorityTokens
	if cfg.AuthorityTokensFile != "" {
		f, err := os.Open(cfg.AuthorityTokensFile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			tokens = append(tokens, sc.Text())
		}
	}
	for _, tok := range tokens {
		if tok, _, _ = strings.Cut(strings.TrimSpace(tok), "#"); tok != "" {
			return tok
		}
	}
	return ""
}

// peerListener is a loopback listener whose connections report peer as
// their remote address: how a test sends real requests "from" a proxy or a
// pod address it cannot bind.
type peerListener struct {
	net.Listener
	peer netip.Addr
}

func (l peerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return peerConn{c, net.TCPAddrFromAddrPort(netip.AddrPortFrom(l.peer, 40000))}, nil
}

type peerConn struct {
	net.Conn
	remote net.Addr
}

func (c peerConn) RemoteAddr() net.Addr { return c.remote }

// servePeer serves srv to connections that appear to come from peer and
// returns the base address.
func servePeer(t checker, srv *relay.Server, peer netip.Addr) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(peerListener{ln, peer})
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}

func postToken(t checker, base string, h http.Header, token string) int {
	req, err := http.NewRequest(http.MethodPost, "http://"+base+"/v1/tokens", strings.NewReader(`{"channel":"c","protocol":"p","clientmode":0}`))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST /v1/tokens: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// joinedAsAuthority sends a JOIN without a token, which only an authority
// may, and reports whether it was accepted.
func joinedAsAuthority(t checker, base string, h http.Header) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+base+"/", &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("WebSocket: %v", err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"cmd":"JOIN","channel":"c","protocol":"p"}`)); err != nil {
		t.Fatalf("WebSocket write: %v", err)
	}
	_, data, err := ws.Read(ctx)
	if err != nil {
		t.Fatalf("WebSocket read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("answer %q: %v", data, err)
	}
	return m["cmd"] == "JOINED"
}

// TestCheckAuthorityCatches makes sure the authority checks fail on the
// mistakes they are there for: the Kubernetes manifest as it was (the pod
// range trusted, loopback an authority by default), a token written into
// the manifest, no token from a secret.
func TestCheckAuthorityCatches(t *testing.T) {
	good := func() site {
		return site{
			env:     map[string]string{"RELAY_AUTHORITY_IPS": "none", "RELAY_AUTHORITY_TOKENS": "placeholder-secret", "RELAY_TRUSTED_PROXIES": "10.244.0.12"},
			secrets: map[string]bool{"RELAY_AUTHORITY_TOKENS": true},
			listen:  []int{7328},
		}
	}
	cases := map[string]func(s *site){
		"pod range trusted, loopback authority": func(s *site) {
			delete(s.env, "RELAY_AUTHORITY_IPS")
			s.env["RELAY_TRUSTED_PROXIES"] = "10.0.0.0/8"
		},
		"a proxy's address is an authority": func(s *site) { s.env["RELAY_AUTHORITY_IPS"] = "10.244.0.0/16" },
		"token in the manifest":             func(s *site) { s.secrets = map[string]bool{} },
		"no token":                          func(s *site) { delete(s.env, "RELAY_AUTHORITY_TOKENS"); s.secrets = map[string]bool{} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			s := good()
			mutate(&s)
			rec := &recorder{T: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				checkAuthority(rec, s, checkSite(rec, s))
			}()
			<-done
			if !rec.failed {
				t.Errorf("checkAuthority passed a manifest with this mistake")
			}
		})
	}
	// The behavioural check alone catches a relay that is an authority by
	// address, whatever the manifest's variables say.
	t.Run("address authority on a real relay", func(t *testing.T) {
		s := good()
		delete(s.env, "RELAY_AUTHORITY_IPS")
		rec := &recorder{T: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			noAuthorityByAddress(rec, checkSite(rec, s))
		}()
		<-done
		if !rec.failed {
			t.Errorf("noAuthorityByAddress passed a relay where loopback is an authority")
		}
	})
	t.Run("good", func(t *testing.T) { s := good(); checkAuthority(t, s, checkSite(t, s)) })
}
