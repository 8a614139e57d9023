package relay_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// jwksServer behaves like an identity provider's JWKS endpoint: it serves
// a key set that a test can replace, fail or slow down while a relay runs.
type jwksServer struct {
	*httptest.Server
	mu       sync.Mutex
	body     []byte
	status   int
	delay    time.Duration
	requests atomic.Int64
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body, status: 200}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		body, status, delay := s.body, s.status, s.delay
		s.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(body []byte, status int, delay time.Duration) {
	s.mu.Lock()
	s.body, s.status, s.delay = body, status, delay
	s.mu.Unlock()
}

const (
	idpIssuer   = "https://tenant.idp.test/"
	idpAudience = "relay-app"
)

// idpConfig is a jwt-auth configuration for the test identity provider,
// with the claim templates of the example.
func idpConfig(jwksURL string, inlineKeys ...map[string]any) string {
	cfg := map[string]any{
		"issuer":   idpIssuer,
		"audience": idpAudience,
		"jwks_url": jwksURL,
		"grants": []map[string]any{
			{"channel": "user-{sub}", "protocol": "notify", "mode": 0},
			{"channel": "org-{org_id}-*", "protocol": "chat", "mode": 2},
			{"channel": "*", "protocol": "admin", "authority": true, "when": map[string]any{"claim": "roles", "contains": "relay-admin"}},
		},
		"extra_claims": []string{"sub", "app_metadata.team"},
	}
	if len(inlineKeys) > 0 {
		cfg["keys"] = inlineKeys
	}
	b, _ := json.Marshal(cfg)
	return string(b)
}

// startIDPRelay runs a relay with jwt-auth reading its keys from url.
func startIDPRelay(t *testing.T, config, url string, mutate func(*relay.Config)) *relaytest.Relay {
	return startRelay(t, func(cfg *relay.Config) {
		withPlugins(t, cfg, map[string]string{"jwt-auth": config}, "jwt-auth")
		cfg.PluginResources = map[string]string{"jwt-auth": url}
		// RSA and ECDSA take milliseconds in the sandbox (ES384 up to 50 ms
		// on a busy machine); the deadline is raised so a loaded CI machine
		// tests the checks, not its own speed. The benchmarks keep 100 ms.
		cfg.PluginTimeout = 2 * time.Second
		cfg.PluginResourceMinRefresh = 200 * time.Millisecond
		cfg.PluginResourceTimeout = 300 * time.Millisecond
		if mutate != nil {
			mutate(cfg)
		}
	})
}

func idpClaims(sub string, extra map[string]any) map[string]any {
	c := map[string]any{"iss": idpIssuer, "aud": []string{idpAudience, "https://tenant.idp.test/userinfo"}, "sub": sub,
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(), "org_id": "acme",
		"app_metadata": map[string]any{"team": "blue"}}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// tryJoin sends a JOIN and returns the reply's errorcode ("" when joined)
// and the JOINED reply.
func tryJoin(t *testing.T, c *relaytest.Client, channel, proto, tok string) (string, map[string]any) {
	t.Helper()
	c.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":%q,"protocol":%q,"token":%q}`, channel, proto, tok))
	m := c.NextMap()
	if m["cmd"] == "JOINED" {
		return "", m
	}
	code, _ := m["errorcode"].(string)
	if code == "" {
		t.Fatalf("JOIN %s: got %v", channel, m)
	}
	return code, m
}

func TestJWTAuthWithIdentityProviderTokens(t *testing.T) {
	hsSecret := base64.RawURLEncoding.EncodeToString([]byte("a-shared-secret-of-at-least-32-bytes!"))
	algs := []string{"RS256", "PS256", "ES256", "ES384", "EdDSA"}
	req := plugintest.JoseRequest{Secrets: map[string]string{"hs1": hsSecret}}
	for _, alg := range algs {
		req.Keys = append(req.Keys, plugintest.JoseKey{KID: strings.ToLower(alg), Alg: alg})
	}
	req.Keys = append(req.Keys, plugintest.JoseKey{KID: "gone", Alg: "RS256"})
	for _, kid := range append([]string{"rs256", "ps256", "es256", "es384", "eddsa"}, "hs1") {
		req.Tokens = append(req.Tokens, plugintest.JoseToken{KID: kid, Claims: idpClaims("user-of-"+kid, nil)})
	}
	refusals := []struct {
		name, code string
		tok        plugintest.JoseToken
		mangle     func(string) string
	}{
		{"expired", "jwt_expired", plugintest.JoseToken{KID: "rs256", Claims: idpClaims("ann", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})}, nil},
		{"wrong audience", "jwt_wrong_audience", plugintest.JoseToken{KID: "rs256", Claims: idpClaims("ann", map[string]any{"aud": "another-api"})}, nil},
		{"wrong issuer", "jwt_wrong_issuer", plugintest.JoseToken{KID: "rs256", Claims: idpClaims("ann", map[string]any{"iss": "https://evil.test/"})}, nil},
		{"RS256 public key used as an HS256 secret", "jwt_alg_mismatch", plugintest.JoseToken{KID: "rs256", HMACWithPEMOf: "rs256", Claims: idpClaims("ann", nil)}, nil},
		{"kid the issuer does not publish", "jwt_unknown_key", plugintest.JoseToken{KID: "gone", Claims: idpClaims("ann", nil)}, nil},
		{"alg none", "jwt_unsupported_alg", plugintest.JoseToken{Unsecured: true, Claims: idpClaims("ann", nil)}, func(tok string) string { return tok + "AAAA" }},
		{"tampered payload", "jwt_bad_signature", plugintest.JoseToken{KID: "es256", Claims: idpClaims("ann", nil)}, func(tok string) string {
			parts := strings.Split(tok, ".")
			p, _ := base64.RawURLEncoding.DecodeString(parts[1])
			p = []byte(strings.Replace(string(p), `"sub":"ann"`, `"sub":"bob"`, 1))
			return parts[0] + "." + base64.RawURLEncoding.EncodeToString(p) + "." + parts[2]
		}},
		{"tampered signature", "jwt_bad_signature", plugintest.JoseToken{KID: "ps256", Claims: idpClaims("ann", nil)}, func(tok string) string {
			return tok[:len(tok)-6] + strings.Repeat("A", 6)
		}},
	}
	for _, r := range refusals {
		req.Tokens = append(req.Tokens, r.tok)
	}
	minted := plugintest.Jose(t, req)

	srv := newJWKSServer(t, minted.Set("rs256", "ps256", "es256", "es384", "eddsa"))
	r := startIDPRelay(t, idpConfig(srv.URL+"/.well-known/jwks.json", map[string]any{"kid": "hs1", "alg": "HS256", "secret_base64": hsSecret}), srv.URL+"/.well-known/jwks.json", nil)

	for i, kid := range []string{"RS256", "PS256", "ES256", "ES384", "EdDSA", "HS256"} {
		t.Run(kid+" admitted", func(t *testing.T) {
			g := guest(t, r)
			sub := "user-of-" + strings.ToLower(kid)
			if kid == "HS256" {
				sub = "user-of-hs1"
			}
			code, m := tryJoin(t, g, "user-"+sub, "notify", minted.Tokens[i])
			if code != "" {
				t.Fatalf("refused with %s", code)
			}
			if info := fmt.Sprint(m["info"]); info != "map[auth:false extra:map[app_metadata.team:blue sub:"+sub+"] mode:0]" {
				t.Fatalf("joined as %s", info)
			}
		})
	}
	for i, c := range refusals {
		t.Run(c.name+" refused", func(t *testing.T) {
			tok := minted.Tokens[6+i]
			if c.mangle != nil {
				tok = c.mangle(tok)
			}
			g := guest(t, r)
			if code, _ := tryJoin(t, g, "user-ann", "notify", tok); code != c.code {
				t.Fatalf("got %q, want %s", code, c.code)
			}
		})
	}
}

func TestJWTAuthClaimTemplates(t *testing.T) {
	tok := func(sub string, extra map[string]any) plugintest.JoseToken {
		return plugintest.JoseToken{KID: "k1", Claims: idpClaims(sub, extra)}
	}
	minted := plugintest.Jose(t, plugintest.JoseRequest{Keys: []plugintest.JoseKey{{KID: "k1", Alg: "RS256"}}, Tokens: []plugintest.JoseToken{
		tok("auth0|ann", nil),
		tok("auth0|bob", map[string]any{"roles": []string{"viewer", "relay-admin"}}),
		tok("*", nil),
		tok("ann/../bob", nil),
		tok("eve", map[string]any{"org_id": "*"}),
		tok("mallory", map[string]any{"org_id": "acme-*"}),
		tok("nobody", map[string]any{"org_id": map[string]any{"id": "acme"}}),
	}})
	srv := newJWKSServer(t, minted.Set("k1"))
	r := startIDPRelay(t, idpConfig(srv.URL), srv.URL, nil)
	ann, bob, star, slash, eve, mallory, nested := minted.Tokens[0], minted.Tokens[1], minted.Tokens[2], minted.Tokens[3], minted.Tokens[4], minted.Tokens[5], minted.Tokens[6]

	for _, c := range []struct {
		name, channel, proto, tok, code, info string
	}{
		{"ann reads her own channel", "user-auth0|ann", "notify", ann, "", "map[auth:false extra:map[app_metadata.team:blue sub:auth0|ann] mode:0]"},
		{"ann cannot read bob's", "user-auth0|bob", "notify", ann, "jwt_channel_not_allowed", ""},
		{"the template's protocol only", "user-auth0|ann", "chat", ann, "jwt_protocol_not_allowed", ""},
		{"ann chats in her org's channels", "org-acme-general", "chat", ann, "", "map[auth:false extra:map[app_metadata.team:blue sub:auth0|ann] mode:2]"},
		{"not in another org's", "org-globex-general", "chat", ann, "jwt_channel_not_allowed", ""},
		{"no admin role, no admin channel", "ops", "admin", ann, "jwt_channel_not_allowed", ""},
		{"the admin role makes an authority anywhere", "ops", "admin", bob, "", "map[auth:true extra:map[app_metadata.team:blue sub:auth0|bob] mode:2]"},
		{"sub * does not grant user-*", "user-*", "notify", star, "jwt_channel_not_allowed", ""},
		{"sub * does not grant another user's channel", "user-auth0|ann", "notify", star, "jwt_channel_not_allowed", ""},
		{"sub with / grants nothing", "user-ann/../bob", "notify", slash, "jwt_channel_not_allowed", ""},
		{"org_id * does not widen to every org", "org-acme-general", "chat", eve, "jwt_channel_not_allowed", ""},
		{"org_id acme-* does not widen either", "org-acme-x", "chat", mallory, "jwt_channel_not_allowed", ""},
		{"an object claim does not substitute", "org-acme-general", "chat", nested, "jwt_channel_not_allowed", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := guest(t, r)
			code, m := tryJoin(t, g, c.channel, c.proto, c.tok)
			if code != c.code {
				t.Fatalf("got %q, want %q (%v)", code, c.code, m)
			}
			if c.code == "" && fmt.Sprint(m["info"]) != c.info {
				t.Fatalf("joined as %v, want %s", m["info"], c.info)
			}
		})
	}
	t.Run("members see each other over the channel", func(t *testing.T) {
		a, b := guest(t, r), guest(t, r)
		join(t, a, "org-acme-room", "chat", ann)
		jb := join(t, b, "org-acme-room", "chat", bob)
		a.NextMap() // JOINED of b
		n := fmt.Sprint(jb["channel"])
		b.Send(`{"cmd":"say","channel":` + n + `,"to":-1,"text":"hi"}`)
		if m := a.NextMap(); m["text"] != "hi" {
			t.Fatalf("a got %v", m)
		}
	})
}

// The identity provider rotates its keys while the relay runs.
func TestJWTAuthKeyRotation(t *testing.T) {
	minted := plugintest.Jose(t, plugintest.JoseRequest{
		Keys: []plugintest.JoseKey{{KID: "2026-01", Alg: "RS256"}, {KID: "2026-02", Alg: "RS256"}, {KID: "forged", Alg: "RS256"}},
		Tokens: []plugintest.JoseToken{{KID: "2026-01", Claims: idpClaims("ann", nil)}, {KID: "2026-02", Claims: idpClaims("ann", nil)},
			{KID: "forged", Claims: idpClaims("ann", nil)}},
	})
	oldTok, newTok, forged := minted.Tokens[0], minted.Tokens[1], minted.Tokens[2]
	srv := newJWKSServer(t, minted.Set("2026-01"))
	r := startIDPRelay(t, idpConfig(srv.URL), srv.URL, nil)
	g := guest(t, r)
	if code, _ := tryJoin(t, g, "user-ann", "notify", oldTok); code != "" {
		t.Fatalf("old key before rotation: %s", code)
	}
	if code, _ := tryJoin(t, g, "user-ann", "notify", newTok); code != "jwt_unknown_key" {
		t.Fatalf("new key before it is published: %s", code)
	}

	t.Run("the new kid is picked up without a restart", func(t *testing.T) {
		srv.serve(minted.Set("2026-02"), 200, 0)
		deadline := time.Now().Add(5 * time.Second)
		for {
			c := guest(t, r)
			code, _ := tryJoin(t, c, "user-ann", "notify", newTok)
			if code == "" {
				break
			}
			if code != "jwt_unknown_key" || time.Now().After(deadline) {
				t.Fatalf("new key after rotation: %s", code)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if code, _ := tryJoin(t, guest(t, r), "user-ann", "notify", oldTok); code != "jwt_unknown_key" {
			t.Fatalf("a token of the removed key after the refresh: %s", code)
		}
	})

	t.Run("a flood of unknown kids does not hammer the identity provider", func(t *testing.T) {
		time.Sleep(250 * time.Millisecond) // past MIN_REFRESH since the last fetch
		c := guest(t, r)
		before, start := srv.requests.Load(), time.Now()
		for range 30 {
			if code, _ := tryJoin(t, c, "user-ann", "notify", forged); code != "jwt_unknown_key" {
				t.Fatalf("a token with a kid nobody published: %s", code)
			}
		}
		time.Sleep(50 * time.Millisecond)
		// One fetch per RELAY_PLUGIN_RESOURCE_MIN_REFRESH (200 ms here) at most.
		if n, most := srv.requests.Load()-before, 1+int64(time.Since(start)/(200*time.Millisecond)); n > most {
			t.Fatalf("30 JOINs with an unknown kid in %v made %d fetches, want at most %d", time.Since(start), n, most)
		}
	})

	t.Run("errors and timeouts keep the last good keys", func(t *testing.T) {
		// An unknown kid makes the relay refetch; the IdP fails, then hangs.
		for _, fail := range []struct {
			status int
			delay  time.Duration
		}{{500, 0}, {200, 2 * time.Second}} {
			before := srv.requests.Load()
			srv.serve([]byte("oops"), fail.status, fail.delay)
			deadline := time.Now().Add(5 * time.Second)
			for srv.requests.Load() < before+2 {
				c := guest(t, r)
				if code, _ := tryJoin(t, c, "user-ann", "notify", oldTok); code != "jwt_unknown_key" {
					t.Fatalf("the removed key while the IdP fails: %s", code)
				}
				start := time.Now()
				if code, _ := tryJoin(t, c, "user-ann", "notify", newTok); code != "" {
					t.Fatalf("the current key while the IdP fails (status %d, delay %v): %s", fail.status, fail.delay, code)
				}
				if e := time.Since(start); e > time.Second {
					t.Fatalf("a JOIN took %v while the IdP hangs", e)
				}
				if time.Now().After(deadline) {
					t.Fatalf("the relay did not retry the IdP (%d requests)", srv.requests.Load()-before)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		_, body := httpGetAll(t, "http://"+r.Addr+"/metrics")
		for _, want := range []string{
			`relay_plugin_resource_fetches_total{outcome="changed",plugin="jwt-auth",resource="` + srv.URL + `"} 2`,
			`relay_plugin_resource_fetches_total{outcome="error",plugin="jwt-auth",resource="` + srv.URL + `"}`,
			`relay_plugin_resource_age_seconds{plugin="jwt-auth",resource="` + srv.URL + `"}`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
}

func TestJWTAuthStartUpWithoutKeys(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/jwks.json"
	l.Close()

	t.Run("an unreachable JWKS URL stops the relay", func(t *testing.T) {
		cfg := relaytest.Config(t)
		withPlugins(t, &cfg, map[string]string{"jwt-auth": idpConfig(dead)}, "jwt-auth")
		cfg.PluginResources = map[string]string{"jwt-auth": dead}
		s, err := relay.New(cfg)
		if err == nil {
			s.Shutdown(t.Context())
			t.Fatal("New succeeded")
		}
		for _, want := range []string{"plugin jwt-auth", dead, "RELAY_PLUGIN_RESOURCE_STARTUP=wait"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
	})

	t.Run("a jwks_url that is not allowed stops the relay", func(t *testing.T) {
		cfg := relaytest.Config(t)
		withPlugins(t, &cfg, map[string]string{"jwt-auth": idpConfig(dead)}, "jwt-auth")
		s, err := relay.New(cfg)
		if err == nil {
			s.Shutdown(t.Context())
			t.Fatal("New succeeded")
		}
		if !strings.Contains(err.Error(), "add it to RELAY_PLUGIN_RESOURCES_JWT_AUTH") {
			t.Errorf("error %q", err)
		}
	})

	t.Run("wait starts and refuses JWT joins with unavailable until the keys arrive", func(t *testing.T) {
		minted := plugintest.Jose(t, plugintest.JoseRequest{Keys: []plugintest.JoseKey{{KID: "k", Alg: "ES256"}},
			Tokens: []plugintest.JoseToken{{KID: "k", Claims: idpClaims("ann", nil)}}})
		srv := newJWKSServer(t, nil)
		srv.serve([]byte("starting"), 503, 0)
		r := startIDPRelay(t, idpConfig(srv.URL), srv.URL, func(c *relay.Config) { c.PluginResourceStartup = "wait" })
		a := authority(t, r)
		g := guest(t, r)
		if code, _ := tryJoin(t, g, "user-ann", "notify", minted.Tokens[0]); code != "unavailable" {
			t.Fatalf("before the keys arrive: %s", code)
		}
		// Grant tokens do not depend on the identity provider.
		join(t, g, "room", "chat", grant(t, a, "room", "chat", 1, `{}`, false))
		srv.serve(minted.Set("k"), 200, 0)
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, _ := tryJoin(t, guest(t, r), "user-ann", "notify", minted.Tokens[0])
			if code == "" {
				break
			}
			if code != "unavailable" || time.Now().After(deadline) {
				t.Fatalf("after the keys arrive: %s", code)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestPluginResourcesFromEnvironment(t *testing.T) {
	t.Setenv("RELAY_PLUGINS", "/x/jwt-auth.wasm")
	t.Setenv("RELAY_PLUGIN_RESOURCES_JWT_AUTH", "https://tenant.idp.test/.well-known/jwks.json")
	t.Setenv("RELAY_PLUGIN_RESOURCE_STARTUP", "wait")
	t.Setenv("RELAY_PLUGIN_RESOURCE_MIN_REFRESH", "30s")
	cfg, err := relay.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PluginResources["jwt-auth"] != "https://tenant.idp.test/.well-known/jwks.json" || cfg.PluginResourceStartup != "wait" ||
		cfg.PluginResourceMinRefresh != 30*time.Second || cfg.PluginResourceMaxRefresh != time.Hour || cfg.PluginResourceMaxBytes != 1<<20 {
		t.Fatalf("config %+v", cfg)
	}
	for name, v := range map[string]string{
		"RELAY_PLUGIN_RESOURCES_JWT_AUTH":   "ftp://tenant.idp.test/jwks",
		"RELAY_PLUGIN_RESOURCE_STARTUP":     "maybe",
		"RELAY_PLUGIN_RESOURCE_MAX_REFRESH": "10s",
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, v)
			if _, err := relay.LoadConfig(); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("%s=%s: %v", name, v, err)
			}
		})
	}
}

// Two tenants of one provider in one configuration, each with its own
// JWKS URL: each token is checked against its own tenant's keys only.
func TestJWTAuthSeveralIssuers(t *testing.T) {
	const staging, prod = "https://staging.idp.test/", "https://prod.idp.test/"
	claims := func(iss string) map[string]any { return idpClaims("ann", map[string]any{"iss": iss}) }
	minted := plugintest.Jose(t, plugintest.JoseRequest{
		Keys: []plugintest.JoseKey{{KID: "s1", Alg: "RS256"}, {KID: "p1", Alg: "ES256"}},
		Tokens: []plugintest.JoseToken{
			{KID: "s1", Claims: claims(staging)},
			{KID: "p1", Claims: claims(prod)},
			{KID: "s1", Claims: claims(prod)}, // a staging key claiming production
		},
	})
	stagingJWKS, prodJWKS := newJWKSServer(t, minted.Set("s1")), newJWKSServer(t, minted.Set("p1"))
	cfg, _ := json.Marshal(map[string]any{
		"audience": idpAudience,
		"grants":   []map[string]any{{"channel": "user-{sub}", "protocol": "notify", "mode": 0}},
		"issuers": []map[string]any{
			{"issuer": staging, "jwks_url": stagingJWKS.URL + "/jwks"},
			{"issuer": prod, "jwks_url": prodJWKS.URL + "/jwks"},
		},
	})
	r := startIDPRelay(t, string(cfg), stagingJWKS.URL+"/jwks, "+prodJWKS.URL+"/jwks", nil)
	for i, want := range []string{"", "", "jwt_unknown_key"} {
		if code, _ := tryJoin(t, guest(t, r), "user-ann", "notify", minted.Tokens[i]); code != want {
			t.Errorf("token %d: got %q, want %q", i, code, want)
		}
	}
}
