package main

import (
	"crypto/hmac"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

// FuzzAuthorize feeds arbitrary JOIN tokens to jwt-auth, the parser an
// unauthenticated client reaches first: it must never panic, and it must
// allow only a token whose signature the configured secret made.
func FuzzAuthorize(f *testing.F) {
	cfg, _ := json.Marshal(map[string]any{
		"keys":     []map[string]any{{"kid": "h1", "alg": "HS256", "secret": secret}},
		"audience": "relay",
	})
	a, err := newAuthorizer(cfg)
	if err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	claims := func(c string) string {
		return `{"aud":"relay","exp":1800000060,"relay":{"channels":["room-*"],"protocols":["chat"],` + c + `}}`
	}
	seed := func(hdr, body string) string {
		in := b64([]byte(hdr)) + "." + b64([]byte(body))
		return in + "." + b64(hs256(secret)([]byte(in)))
	}
	good := seed(`{"alg":"HS256","kid":"h1"}`, claims(`"mode":2`))
	if v := a.authorize(&sdk.Join{Token: good, Channel: sdk.Channel{Name: "room-1", Protocol: "chat"}, Now: now}); v.Kind() != sdk.KindAllow {
		f.Fatalf("the signed seed is not allowed: %v", v.Kind())
	}
	f.Add(good)
	f.Add(seed(`{"alg":"HS256"}`, claims(`"authority":true,"extra":{"a":1}`)))
	f.Add(seed(`{"alg":"none"}`, claims(`"mode":2`)))
	f.Add(b64([]byte(`{"alg":"HS256"}`)) + "." + b64([]byte(claims(""))) + ".AAAA")
	f.Add("a.b.c-0123456789")
	f.Fuzz(func(t *testing.T, tok string) {
		v := a.authorize(&sdk.Join{Token: tok, Channel: sdk.Channel{Name: "room-1", Protocol: "chat"}, Now: now})
		if v.Kind() != sdk.KindAllow {
			return
		}
		parts := strings.Split(tok, ".")
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil || !hmac.Equal(sig, hs256(secret)([]byte(parts[0]+"."+parts[1]))) {
			t.Fatalf("allowed a token the secret did not sign: %q", tok)
		}
	})
}
