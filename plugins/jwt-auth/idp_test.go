//go:build !wasip1

// The unit tests of fetched key sets use sdk.SetResource, which exists
// only outside a wasm host.

package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

func rsaJWK(t *testing.T, kid string, k *rsa.PublicKey) map[string]any {
	t.Helper()
	return map[string]any{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
}

func rs256(t *testing.T, k *rsa.PrivateKey) func([]byte) []byte {
	return func(in []byte) []byte {
		h := sha256.Sum256(in)
		sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, h[:])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

func jwksOf(keys ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

// Two tenants in one configuration, each with its own keys: a token
// cannot borrow the other tenant's key by naming its issuer.
func TestMultipleIssuers(t *testing.T) {
	staging, _ := rsa.GenerateKey(rand.Reader, 2048)
	prod, _ := rsa.GenerateKey(rand.Reader, 2048)
	sdk.SetResource("https://staging.test/jwks", jwksOf(rsaJWK(t, "s1", &staging.PublicKey)))
	sdk.SetResource("https://prod.test/jwks", jwksOf(rsaJWK(t, "p1", &prod.PublicKey)))
	cfg := `{"audience":"api","grants":[{"channel":"user-{sub}","protocol":"notify"}],
	  "issuers":[{"issuer":"https://staging.test/","jwks_url":"https://staging.test/jwks"},
	             {"issuer":"https://prod.test/","jwks_url":"https://prod.test/jwks","grants":[{"channel":"prod-{sub}","protocol":"notify"}]}]}`
	a, err := newAuthorizer([]byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(iss string) map[string]any {
		return map[string]any{"iss": iss, "aud": "api", "sub": "ann", "exp": now.Add(time.Minute).Unix()}
	}
	for _, c := range []struct {
		name, token, channel, code string
	}{
		{"staging token, staging grants", sign(t, map[string]any{"alg": "RS256", "kid": "s1"}, claims("https://staging.test/"), rs256(t, staging)), "user-ann", ""},
		{"prod token, its own grants", sign(t, map[string]any{"alg": "RS256", "kid": "p1"}, claims("https://prod.test/"), rs256(t, prod)), "prod-ann", ""},
		{"prod token, not staging's grants", sign(t, map[string]any{"alg": "RS256", "kid": "p1"}, claims("https://prod.test/"), rs256(t, prod)), "user-ann", codeWrongChannel},
		{"staging key claiming prod", sign(t, map[string]any{"alg": "RS256", "kid": "s1"}, claims("https://prod.test/"), rs256(t, staging)), "prod-ann", codeUnknownKey},
		{"staging key, prod kid", sign(t, map[string]any{"alg": "RS256", "kid": "p1"}, claims("https://prod.test/"), rs256(t, staging)), "prod-ann", codeBadSignature},
		{"an issuer not configured", sign(t, map[string]any{"alg": "RS256", "kid": "s1"}, claims("https://other.test/"), rs256(t, staging)), "user-ann", codeWrongIssuer},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := a.authorize(&sdk.Join{Token: c.token, Channel: sdk.Channel{Name: c.channel, Protocol: "notify"}, Now: now})
			if c.code == "" && v.Kind() != sdk.KindAllow || v.ErrorCode() != c.code {
				t.Fatalf("got %v %q (%s), want %q", v.Kind(), v.ErrorCode(), v.Message(), c.code)
			}
		})
	}
}

func TestRSAKeysUnder2048BitsAreRefused(t *testing.T) {
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&weak.PublicKey)
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	cfg, _ := json.Marshal(map[string]any{"keys": []map[string]any{{"alg": "RS256", "public_key": pemText}}})
	if _, err := newAuthorizer(cfg); err == nil || !strings.Contains(err.Error(), "at least 2048") {
		t.Fatalf("a 1024-bit configured key: %v", err)
	}
	inline, _ := json.Marshal(map[string]any{"jwks": json.RawMessage(jwksOf(rsaJWK(t, "w", &weak.PublicKey)))})
	if _, err := newAuthorizer(inline); err == nil || !strings.Contains(err.Error(), "at least 2048") {
		t.Fatalf("a 1024-bit inline JWK: %v", err)
	}
	// In a fetched set the weak key is skipped, so its tokens find no key.
	strong, _ := rsa.GenerateKey(rand.Reader, 2048)
	sdk.SetResource("https://weak.test/jwks", jwksOf(rsaJWK(t, "w", &weak.PublicKey), rsaJWK(t, "s", &strong.PublicKey)))
	a, err := newAuthorizer([]byte(`{"jwks_url":"https://weak.test/jwks","require_exp":false,"relay_claims_unused":0}`))
	if err == nil {
		t.Fatal("unknown field accepted")
	}
	a, err = newAuthorizer([]byte(`{"jwks_url":"https://weak.test/jwks","require_exp":false}`))
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, map[string]any{"alg": "RS256", "kid": "w"}, map[string]any{"relay": map[string]any{"channels": []string{"*"}, "protocols": []string{"*"}}}, rs256(t, weak))
	if v := a.authorize(&sdk.Join{Token: tok, Channel: sdk.Channel{Name: "c", Protocol: "p"}, Now: time.Now()}); v.ErrorCode() != codeUnknownKey {
		t.Fatalf("token of a weak fetched key: %v %q", v.Kind(), v.ErrorCode())
	}
}

func TestJWKSResourceStates(t *testing.T) {
	if _, err := newAuthorizer([]byte(`{"jwks_url":"https://not-listed.test/jwks"}`)); err == nil ||
		!strings.Contains(err.Error(), "add it to RELAY_PLUGIN_RESOURCES_JWT_AUTH") {
		t.Fatalf("a URL the operator did not list: %v", err)
	}
	sdk.SetResource("https://garbage.test/jwks", []byte("<html>"))
	if _, err := newAuthorizer([]byte(`{"jwks_url":"https://garbage.test/jwks"}`)); err == nil || !strings.Contains(err.Error(), "not a JWKS") {
		t.Fatalf("a page that is not a JWKS: %v", err)
	}
	// Listed but not fetched yet (RELAY_PLUGIN_RESOURCE_STARTUP=wait).
	sdk.SetResource("https://late.test/jwks", []byte("x"))
	sdk.SetResource("https://late.test/jwks", nil)
	a, err := newAuthorizer([]byte(`{"jwks_url":"https://late.test/jwks"}`))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	tok := sign(t, map[string]any{"alg": "RS256", "kid": "k"}, map[string]any{"exp": time.Now().Add(time.Minute).Unix()}, rs256(t, k))
	join := &sdk.Join{Token: tok, Channel: sdk.Channel{Name: "c", Protocol: "p"}, Now: time.Now()}
	if v := a.authorize(join); v.ErrorCode() != codeUnavailable {
		t.Fatalf("before the keys arrive: %v %q", v.Kind(), v.ErrorCode())
	}
	sdk.SetResource("https://late.test/jwks", jwksOf(rsaJWK(t, "k", &k.PublicKey)))
	if v := a.authorize(join); v.ErrorCode() != codeWrongChannel {
		t.Fatalf("after the keys arrive: %v %q (%s)", v.Kind(), v.ErrorCode(), v.Message())
	}
	// A broken set later keeps the keys parsed before.
	sdk.SetResource("https://late.test/jwks", []byte(`{"keys":`))
	if v := a.authorize(join); v.ErrorCode() != codeWrongChannel {
		t.Fatalf("after a broken set: %v %q (%s)", v.Kind(), v.ErrorCode(), v.Message())
	}
}

func TestTemplatesAndClaimPaths(t *testing.T) {
	for _, bad := range []string{"", "user-{sub", "user-}", "a*b", "{}", "x-{a*}", "{a}{"} {
		if _, err := parseTemplate(bad); err == nil {
			t.Errorf("template %q accepted", bad)
		}
	}
	c, ok := parseClaims([]byte(`{"sub":"auth0|42","n":7,"f":1.5,"https://app.example/org":"acme",
	  "app_metadata":{"team":"blue","deep":{"x":"y"}},"o":{"id":"org_1"},"roles":["a","b"],"scope":"read write"}`))
	if !ok {
		t.Fatal("claims do not parse")
	}
	for tmpl, want := range map[string]string{
		"user-{sub}":                    "user-auth0|42",
		"n-{n}":                         "n-7",
		"f-{f}":                         "",
		"team-{app_metadata.team}-*":    "team-blue-*",
		"d-{app_metadata.deep.x}":       "d-y",
		"org-{https://app.example/org}": "org-acme",
		"clerk-{o.id}":                  "clerk-org_1",
		"missing-{nope}":                "",
		"arr-{roles}":                   "",
		"obj-{app_metadata}":            "",
	} {
		tp, err := parseTemplate(tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tmpl, err)
		}
		got, ok := tp.expand(c)
		if !ok {
			got = ""
		}
		if got != want {
			t.Errorf("%s expanded to %q, want %q", tmpl, got, want)
		}
	}
	s := func(v string) *string { return &v }
	for _, w := range []struct {
		cond condition
		want bool
	}{
		{condition{Claim: "roles", Contains: s("b")}, true},
		{condition{Claim: "roles", Contains: s("c")}, false},
		{condition{Claim: "scope", Contains: s("write")}, true},
		{condition{Claim: "scope", Contains: s("rea")}, false},
		{condition{Claim: "app_metadata.team", Equals: json.RawMessage(`"blue"`)}, true},
		{condition{Claim: "n", Equals: json.RawMessage(`7`)}, true},
		{condition{Claim: "nope", Contains: s("x")}, false},
	} {
		if got := w.cond.holds(c); got != w.want {
			t.Errorf("%+v holds = %v", w.cond, got)
		}
	}
}

// TestDocumentedConfigurationsLoad checks that every configuration in
// README.md and IDENTITY-PROVIDERS.md is one jwt-auth accepts.
func TestDocumentedConfigurationsLoad(t *testing.T) {
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	set := jwksOf(rsaJWK(t, "k", &k.PublicKey))
	n := 0
	for _, doc := range []string{"README.md", "IDENTITY-PROVIDERS.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		blocks := strings.Split(string(b), "```json\n")
		for _, blk := range blocks[1:] {
			cfg := blk[:strings.Index(blk, "```")]
			if !strings.Contains(cfg, `"jwks_url"`) {
				continue // a token, not a configuration
			}
			var probe struct {
				JWKSURL string `json:"jwks_url"`
				Issuers []struct {
					JWKSURL string `json:"jwks_url"`
				} `json:"issuers"`
			}
			if err := json.Unmarshal([]byte(cfg), &probe); err != nil {
				t.Fatalf("%s: %v\n%s", doc, err, cfg)
			}
			urls := []string{probe.JWKSURL}
			for _, is := range probe.Issuers {
				urls = append(urls, is.JWKSURL)
			}
			for _, u := range urls {
				if u != "" {
					sdk.SetResource(u, set)
				}
			}
			if _, err := newAuthorizer([]byte(cfg)); err != nil {
				t.Errorf("%s: %v\n%s", doc, err, cfg)
			}
			n++
		}
	}
	if n < 7 {
		t.Fatalf("found %d configurations", n)
	}
}

func TestStringList(t *testing.T) {
	for in, want := range map[string]string{
		`[]`: "", `[ ]`: "", `["a"]`: "a", `[ "a" , "b" ]`: "a|b", `["a\u0062"]`: "ab", `["é","x"]`: "é|x",
		`["a",1]`: "!", `["a"`: "!", `"a"`: "!", `["a"]x`: "!", `["a",]`: "!",
	} {
		got, ok := stringList(sdk.Value(in))
		s := strings.Join(got, "|")
		if !ok {
			s = "!"
		}
		if s != want {
			t.Errorf("%s: got %q, want %q", in, s, want)
		}
	}
}
