package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

const secret = "0123456789abcdef0123456789abcdef-test-secret"

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// sign builds a JWT; signer returns the signature of the signing input.
func sign(t *testing.T, hdr map[string]any, claims map[string]any, signer func([]byte) []byte) string {
	t.Helper()
	h, _ := json.Marshal(hdr)
	c, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(c)
	return in + "." + b64(signer([]byte(in)))
}

func hs256(key string) func([]byte) []byte {
	return func(in []byte) []byte {
		m := hmac.New(sha256.New, []byte(key))
		m.Write(in)
		return m.Sum(nil)
	}
}

func TestAuthorize(t *testing.T) {
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&ecPriv.PublicKey)
	ecPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	cfg, _ := json.Marshal(map[string]any{
		"keys": []map[string]any{
			{"kid": "h1", "alg": "HS256", "secret": secret},
			{"kid": "e1", "alg": "EdDSA", "public_key": base64.StdEncoding.EncodeToString(edPub)},
			{"kid": "p1", "alg": "ES256", "public_key": ecPEM},
		},
		"audience":     "relay",
		"issuer":       "app",
		"extra_claims": []string{"sub"},
	})
	a, err := newAuthorizer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	good := func() map[string]any {
		return map[string]any{
			"iss": "app", "aud": []string{"other", "relay"}, "sub": "user-7",
			"exp": now.Add(time.Minute).Unix(), "nbf": now.Add(-time.Minute).Unix(),
			"relay": map[string]any{"channels": []string{"room-*"}, "protocols": []string{"chat"}, "mode": 2, "extra": map[string]any{"name": "Ann"}},
		}
	}
	with := func(k string, v any) map[string]any {
		c := good()
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	hsTok := func(c map[string]any) string {
		return sign(t, map[string]any{"alg": "HS256", "kid": "h1"}, c, hs256(secret))
	}
	edSign := func(in []byte) []byte { return ed25519.Sign(edPriv, in) }
	ecSign := func(in []byte) []byte {
		h := sha256.Sum256(in)
		r, s, err := ecdsa.Sign(rand.Reader, ecPriv, h[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
		return sig
	}
	tamper := func(tok string) string { return tok[:len(tok)-3] + strings.Repeat("A", 3) }
	// respell sets an unused low bit of the signature's last character: a
	// lenient decoder reads the same 32 bytes, so the token would pass.
	respell := func(tok string) string {
		const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		last := strings.IndexByte(alphabet, tok[len(tok)-1])
		return tok[:len(tok)-1] + string(alphabet[last^1])
	}
	lineBreak := func(tok string) string { return tok[:len(tok)-5] + "\n" + tok[len(tok)-5:] }

	tests := []struct {
		name, token, channel string
		kind                 sdk.VerdictKind
		code                 string
	}{
		{"HS256 grants the channel", hsTok(good()), "room-1", sdk.KindAllow, ""},
		{"EdDSA grants the channel", sign(t, map[string]any{"alg": "EdDSA", "kid": "e1"}, good(), edSign), "room-2", sdk.KindAllow, ""},
		{"ES256 grants the channel", sign(t, map[string]any{"alg": "ES256"}, good(), ecSign), "room-3", sdk.KindAllow, ""},
		{"not a JWT is left to the relay", "grant-token-123", "room-1", sdk.KindContinue, ""},
		{"wrong signature", tamper(hsTok(good())), "room-1", sdk.KindDeny, codeBadSignature},
		{"a re-spelled signature is refused", respell(hsTok(good())), "room-1", sdk.KindDeny, codeMalformed},
		{"a line break makes it not a JWT (left to the relay)", lineBreak(hsTok(good())), "room-1", sdk.KindContinue, ""},
		{"signed with another secret", sign(t, map[string]any{"alg": "HS256"}, good(), hs256(secret+"x")), "room-1", sdk.KindDeny, codeBadSignature},
		{"EdDSA key used for another token", sign(t, map[string]any{"alg": "EdDSA"}, with("sub", "evil"), func([]byte) []byte { return ed25519.Sign(edPriv, []byte("x")) }), "room-1", sdk.KindDeny, codeBadSignature},
		{"alg none is refused", b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"exp":1}`)) + ".AAAA", "room-1", sdk.KindDeny, codeUnsupportedAlg},
		{"unknown kid", sign(t, map[string]any{"alg": "HS256", "kid": "zz"}, good(), hs256(secret)), "room-1", sdk.KindDeny, codeUnknownKey},
		{"expired", hsTok(with("exp", now.Add(-time.Minute).Unix())), "room-1", sdk.KindDeny, codeExpired},
		{"expired within leeway is fine", hsTok(with("exp", now.Add(-10*time.Second).Unix())), "room-1", sdk.KindAllow, ""},
		{"no exp", hsTok(with("exp", nil)), "room-1", sdk.KindDeny, codeMissingExpires},
		{"not yet valid", hsTok(with("nbf", now.Add(time.Hour).Unix())), "room-1", sdk.KindDeny, codeNotYetValid},
		{"wrong audience", hsTok(with("aud", "someone-else")), "room-1", sdk.KindDeny, codeWrongAudience},
		{"wrong issuer", hsTok(with("iss", "mallory")), "room-1", sdk.KindDeny, codeWrongIssuer},
		{"wrong channel", hsTok(good()), "lobby", sdk.KindDeny, codeWrongChannel},
		{"no grants claim", hsTok(with("relay", nil)), "room-1", sdk.KindDeny, codeWrongChannel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := a.authorize(&sdk.Join{Token: tt.token, Channel: sdk.Channel{Name: tt.channel, Protocol: "chat"}, Now: now})
			if v.Kind() != tt.kind || v.ErrorCode() != tt.code {
				t.Fatalf("got %v %q (%s), want %v %q", v.Kind(), v.ErrorCode(), v.Message(), tt.kind, tt.code)
			}
			if tt.kind == sdk.KindAllow {
				mode, _ := v.Mode()
				extra, _ := v.Extra()
				if mode != 2 || string(extra) != `{"name":"Ann","sub":"user-7"}` {
					t.Fatalf("mode %d extra %s", mode, extra)
				}
			}
		})
	}
	v := a.authorize(&sdk.Join{Token: hsTok(good()), Channel: sdk.Channel{Name: "room-1", Protocol: "video"}, Now: now})
	if v.ErrorCode() != codeWrongProtocol {
		t.Fatalf("wrong protocol: %v %q", v.Kind(), v.ErrorCode())
	}
}

func TestBadConfiguration(t *testing.T) {
	for _, cfg := range []string{
		``, `{}`, `{"keys":[{"alg":"HS256","secret":"short"}]}`, `{"keys":[{"alg":"RS256"}]}`,
		`{"keys":[{"alg":"EdDSA","public_key":"AAAA"}]}`, `{"keys":[{"alg":"HS256","secret":"` + secret + `"}],"typo":1}`,
	} {
		if _, err := newAuthorizer([]byte(cfg)); err == nil {
			t.Errorf("configuration %s accepted", cfg)
		}
	}
}

func TestMissingConfigurationIsRequired(t *testing.T) {
	for _, cfg := range []string{``, " \n"} {
		_, err := newAuthorizer([]byte(cfg))
		if err == nil || err.Error() != "jwt-auth configuration is required: a JSON object, see its README.md" {
			t.Errorf("configuration %q: %v", cfg, err)
		}
	}
}
