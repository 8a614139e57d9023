package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

// FuzzAuthorize feeds arbitrary tokens to jwt-auth's parsing and checks:
// it must never panic, and it may admit a token only when the token really
// is signed with the configured HS256 secret. The seed corpus is in
// testdata/fuzz/FuzzAuthorize; go test runs it, go test -fuzz explores.
func FuzzAuthorize(f *testing.F) {
	cfg := `{"keys":[{"kid":"h","alg":"HS256","secret":"` + secret + `"}],"require_exp":false,
	  "grants":[{"channel":"user-{sub}","protocol":"*"},{"channel":"org-{app.org}-*","when":{"claim":"roles","contains":"x"}}],
	  "extra_claims":["sub","app.org"]}`
	a, err := newAuthorizer([]byte(cfg))
	if err != nil {
		f.Fatal(err)
	}
	good := sign(&testing.T{}, map[string]any{"alg": "HS256", "kid": "h"}, map[string]any{"sub": "ann", "app": map[string]any{"org": "acme"}, "roles": []string{"x"}}, hs256(secret))
	f.Add(good, "user-ann")
	f.Add(good, "org-acme-1")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbm4ifQ.", "user-ann")
	f.Fuzz(func(t *testing.T, tok, channel string) {
		v := a.authorize(&sdk.Join{Token: tok, Channel: sdk.Channel{Name: channel, Protocol: "p"}, Now: time.Unix(1_800_000_000, 0)})
		if v.Kind() != sdk.KindAllow {
			return
		}
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			t.Fatalf("admitted a token that is not three parts: %q", tok)
		}
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(parts[0] + "." + parts[1]))
		if parts[2] != base64.RawURLEncoding.EncodeToString(m.Sum(nil)) {
			t.Fatalf("admitted a token not signed with the secret: %q", tok)
		}
	})
}
