package plugin_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
)

// firstParty returns the specs of the three first-party plugins, built from
// plugins/, with working configurations.
func firstParty(t testing.TB, edPub ed25519.PublicKey) []plugin.Spec {
	jwtCfg, _ := json.Marshal(map[string]any{
		"keys": []map[string]any{
			{"alg": "HS256", "secret": testSecret},
			{"alg": "EdDSA", "public_key": base64.StdEncoding.EncodeToString(edPub)},
		},
		"audience": "relay",
	})
	return []plugin.Spec{
		{Name: "jwt-auth", Path: plugintest.BuildGo(t, "plugins", "./jwt-auth"), Config: jwtCfg},
		{Name: "message-guard", Path: plugintest.BuildGo(t, "plugins", "./message-guard"),
			Config: []byte(`{"protocols":{"chat":{"commands":["say"],"max_body_bytes":200,"required":["text"],"redact":["password"]}}}`)},
		{Name: "token-policy", Path: plugintest.BuildGo(t, "plugins", "./token-policy"),
			Config: []byte(`{"protocols":["chat"],"max_lifetime_seconds":10,"makeauth_protocols":[],"issuer":"relay-test"}`)},
	}
}

const testSecret = "0123456789abcdef0123456789abcdef-secret"

// JWT builds a signed token for tests.
func JWT(alg string, claims map[string]any, sign func([]byte) []byte) string {
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	return in + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(in)))
}

func hs256(in []byte) []byte {
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write(in)
	return m.Sum(nil)
}

func TestFirstPartyPlugins(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	// A generous deadline: these cases are about the plugins' verdicts, and a
	// signature check in a guest can take tens of milliseconds on a loaded
	// CI machine (deadlines have their own tests).
	h, _ := load(t, plugin.Config{Plugins: firstParty(t, edPub), Timeout: 5 * time.Second})
	ctx := context.Background()
	denied := plugin.JoinOutcome{ErrorCode: "access_denied", Error: "Access denied."}
	claims := func(exp time.Duration, channel string) map[string]any {
		return map[string]any{"aud": "relay", "exp": time.Now().Add(exp).Unix(), "sub": "u1",
			"relay": map[string]any{"channels": []string{channel}, "protocols": []string{"chat"}, "mode": 1, "extra": map[string]any{"name": "Ann"}}}
	}
	edSign := func(in []byte) []byte { return ed25519.Sign(edPriv, in) }

	t.Run("jwt-auth", func(t *testing.T) {
		tests := []struct {
			name, token, channel, code string
		}{
			{"HS256 token joins", JWT("HS256", claims(time.Minute, "room-*"), hs256), "room-9", ""},
			{"EdDSA token joins", JWT("EdDSA", claims(time.Minute, "room-9"), edSign), "room-9", ""},
			{"bad signature", JWT("HS256", claims(time.Minute, "room-*"), func(b []byte) []byte { return hs256(append(b, 'x')) }), "room-9", "jwt_bad_signature"},
			{"expired", JWT("EdDSA", claims(-time.Hour, "room-9"), edSign), "room-9", "jwt_expired"},
			{"wrong channel", JWT("HS256", claims(time.Minute, "room-1"), hs256), "room-9", "jwt_channel_not_allowed"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := h.AuthorizeJoin(ctx, &plugin.JoinRequest{ClientID: 1, Token: tt.token, Channel: tt.channel, Protocol: "chat", Builtin: denied})
				if tt.code == "" {
					if !got.Allowed || got.Mode != 1 || got.Authority || string(got.Extra) != `{"name":"Ann"}` {
						t.Fatalf("got %+v extra %s", got, got.Extra)
					}
				} else if got.Allowed || got.ErrorCode != tt.code {
					t.Fatalf("got %+v, want %s", got, tt.code)
				}
			})
		}
		// Tokens that are not JWTs are the relay's business.
		if got := h.AuthorizeJoin(ctx, &plugin.JoinRequest{Token: "static-secret", Channel: "x", Protocol: "chat", Builtin: plugin.JoinOutcome{Allowed: true, Authority: true, Mode: 2}}); !got.Allowed || !got.Authority {
			t.Fatalf("static token: %+v", got)
		}
	})

	t.Run("message-guard", func(t *testing.T) {
		out := h.FilterMessage(ctx, msg("say", `{"text":"hi","password":"hunter2"}`))
		if out.Action != plugin.Deliver || string(out.Body) != `{"text":"hi","password":"[redacted]"}` {
			t.Fatalf("redaction: %+v %s", out, out.Body)
		}
		if out := h.FilterMessage(ctx, msg("shout", `{"text":"hi"}`)); out.ErrorCode != "guard_command_not_allowed" {
			t.Fatalf("command: %+v", out)
		}
		if out := h.FilterMessage(ctx, msg("say", `{"t":"`+strings.Repeat("x", 300)+`"}`)); out.ErrorCode != "guard_body_too_large" {
			t.Fatalf("size: %+v", out)
		}
		if out := h.FilterMessage(ctx, msg("say", `{"x":1}`)); out.ErrorCode != "guard_missing_field" {
			t.Fatalf("required: %+v", out)
		}
	})

	t.Run("token-policy", func(t *testing.T) {
		req := &plugin.TokenRequest{ClientID: 1, Channel: "room", Protocol: "chat",
			Builtin: plugin.TokenOutcome{Allowed: true, ClientMode: 1, Extra: json.RawMessage(`{"user":"ann"}`), Lifetime: 30 * time.Second}}
		before := time.Now().UnixMilli()
		got := h.OnTokenCreate(ctx, req)
		var extra struct {
			User     string `json:"user"`
			Issuer   string `json:"issuer"`
			IssuedAt int64  `json:"issued_at"`
		}
		if err := json.Unmarshal(got.Extra, &extra); err != nil || !got.Allowed || got.Lifetime != 10*time.Second ||
			extra.User != "ann" || extra.Issuer != "relay-test" || extra.IssuedAt < before || extra.IssuedAt > time.Now().UnixMilli() {
			t.Fatalf("got %+v extra %s", got, got.Extra)
		}
		req.Builtin.MakeAuth = true
		if got := h.OnTokenCreate(ctx, req); got.Allowed || got.ErrorCode != "policy_makeauth_not_allowed" {
			t.Fatalf("makeauth: %+v", got)
		}
		req.Builtin.MakeAuth, req.Protocol = false, "video"
		if got := h.OnTokenCreate(ctx, req); got.Allowed || got.ErrorCode != "policy_protocol_not_allowed" {
			t.Fatalf("protocol: %+v", got)
		}
	})
}

// BenchmarkStartWarm measures Load of the three first-party plugins with a
// warm on-disk compilation cache: what a relay restart costs.
func BenchmarkStartWarm(b *testing.B) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	cfg := plugin.Config{Plugins: firstParty(b, edPub), CacheDir: plugintest.CacheDir(b)}
	warm, err := plugin.Load(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	warm.Close(context.Background())
	b.ResetTimer()
	for range b.N {
		h, err := plugin.Load(context.Background(), cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		h.Close(context.Background())
		b.StartTimer()
	}
}

// BenchmarkStartCold measures the same without a compilation cache.
func BenchmarkStartCold(b *testing.B) {
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	cfg := plugin.Config{Plugins: firstParty(b, edPub), CacheDir: plugin.CacheDirOff}
	for range b.N {
		h, err := plugin.Load(context.Background(), cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		h.Close(context.Background())
		b.StartTimer()
	}
}

// BenchmarkJWTAuthorizeJoin measures jwt-auth verifying a token of each
// algorithm family in the sandbox.
func BenchmarkJWTAuthorizeJoin(b *testing.B) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	pemOf := func(pub any) string {
		der, _ := x509.MarshalPKIXPublicKey(pub)
		return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	cfg, _ := json.Marshal(map[string]any{"audience": "relay", "keys": []map[string]any{
		{"alg": "HS256", "secret": testSecret},
		{"alg": "EdDSA", "public_key": base64.StdEncoding.EncodeToString(edPub)},
		{"alg": "RS256", "public_key": pemOf(&rsaKey.PublicKey)},
		{"alg": "PS256", "public_key": pemOf(&rsaKey.PublicKey)},
		{"alg": "ES256", "public_key": pemOf(&ecKey.PublicKey)},
		{"alg": "ES384", "public_key": pemOf(&ec384.PublicKey)},
	}})
	spec := firstParty(b, edPub)[0]
	spec.Config = cfg
	// ES384 takes 10 to 50 ms in the sandbox on a busy machine, too close to
	// the default 100 ms deadline for a benchmark.
	h, _ := load(b, plugin.Config{Plugins: []plugin.Spec{spec}, Timeout: time.Second})
	claims := map[string]any{"aud": "relay", "exp": time.Now().Add(time.Hour).Unix(),
		"relay": map[string]any{"channels": []string{"room"}, "protocols": []string{"chat"}}}
	digest := func(h crypto.Hash, in []byte) []byte { d := h.New(); d.Write(in); return d.Sum(nil) }
	ecSign := func(k *ecdsa.PrivateKey, h crypto.Hash) func([]byte) []byte {
		return func(in []byte) []byte {
			r, s, _ := ecdsa.Sign(rand.Reader, k, digest(h, in))
			n := (k.Curve.Params().BitSize + 7) / 8
			sig := make([]byte, 2*n)
			r.FillBytes(sig[:n])
			s.FillBytes(sig[n:])
			return sig
		}
	}
	for _, tc := range []struct{ name, token string }{
		{"not-a-JWT", "static-token-left-to-the-relay"},
		{"HS256", JWT("HS256", claims, hs256)},
		{"EdDSA", JWT("EdDSA", claims, func(in []byte) []byte { return ed25519.Sign(edPriv, in) })},
		{"RS256", JWT("RS256", claims, func(in []byte) []byte {
			sig, _ := rsa.SignPKCS1v15(rand.Reader, rsaKey, crypto.SHA256, digest(crypto.SHA256, in))
			return sig
		})},
		{"PS256", JWT("PS256", claims, func(in []byte) []byte {
			sig, _ := rsa.SignPSS(rand.Reader, rsaKey, crypto.SHA256, digest(crypto.SHA256, in), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
			return sig
		})},
		{"ES256", JWT("ES256", claims, ecSign(ecKey, crypto.SHA256))},
		{"ES384", JWT("ES384", claims, ecSign(ec384, crypto.SHA384))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			req := &plugin.JoinRequest{Token: tc.token, Channel: "room", Protocol: "chat"}
			if tc.name == "not-a-JWT" {
				// The call's fixed cost: jwt-auth leaves the token to the relay.
				req.Builtin = plugin.JoinOutcome{Allowed: true}
			}
			for range b.N {
				if out := h.AuthorizeJoin(context.Background(), req); !out.Allowed {
					b.Fatalf("%+v", out)
				}
			}
		})
	}
}
