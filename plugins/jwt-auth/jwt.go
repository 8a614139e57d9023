package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

// Error codes sent to a client whose JWT is refused.
const (
	codeMalformed      = "jwt_malformed"
	codeUnknownKey     = "jwt_unknown_key"
	codeBadSignature   = "jwt_bad_signature"
	codeExpired        = "jwt_expired"
	codeNotYetValid    = "jwt_not_yet_valid"
	codeWrongAudience  = "jwt_wrong_audience"
	codeWrongIssuer    = "jwt_wrong_issuer"
	codeWrongChannel   = "jwt_channel_not_allowed"
	codeWrongProtocol  = "jwt_protocol_not_allowed"
	codeMissingExpires = "jwt_missing_exp"
)

// config is the plugin's JSON configuration.
type config struct {
	Keys []keyConfig `json:"keys"`
	// Audience, when set, must appear in the token's aud claim.
	Audience string `json:"audience"`
	// Issuer, when set, must equal the token's iss claim.
	Issuer string `json:"issuer"`
	// LeewaySeconds tolerates clock skew for exp and nbf. Default 30.
	LeewaySeconds *int `json:"leeway_seconds"`
	// RequireExp refuses tokens without exp. Default true.
	RequireExp *bool `json:"require_exp"`
	// Claim names the object claim holding the relay grants. Default "relay".
	Claim string `json:"claim"`
	// DefaultMode is the member's mode when the claim has none. Default 1.
	DefaultMode *int `json:"default_mode"`
	// ExtraClaims are top-level claims copied into the member's extra.
	ExtraClaims []string `json:"extra_claims"`
}

type keyConfig struct {
	KID string `json:"kid"`
	Alg string `json:"alg"`
	// Secret is the HS256 key as text; SecretBase64 as base64.
	Secret       string `json:"secret"`
	SecretBase64 string `json:"secret_base64"`
	// PublicKey is an ES256 or EdDSA public key: PEM (PKIX) or, for EdDSA,
	// the 32 raw bytes in base64.
	PublicKey string `json:"public_key"`
}

type key struct {
	kid, alg string
	secret   []byte
	ec       *ecdsa.PublicKey
	ed       ed25519.PublicKey
}

type authorizer struct {
	cfg         config
	keys        []key
	leeway      time.Duration
	requireExp  bool
	defaultMode int
}

func newAuthorizer(raw []byte) (*authorizer, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		// The host adds which variable it read (RELAY_PLUGIN_CONFIG_<NAME>).
		return nil, errors.New("jwt-auth configuration is required: a JSON object, see its README.md")
	}
	a := &authorizer{leeway: 30 * time.Second, requireExp: true, defaultMode: 1}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a.cfg); err != nil {
		return nil, fmt.Errorf("jwt-auth configuration: %w", err)
	}
	if len(a.cfg.Keys) == 0 {
		return nil, errors.New("jwt-auth configuration: keys is empty")
	}
	if a.cfg.LeewaySeconds != nil {
		a.leeway = time.Duration(*a.cfg.LeewaySeconds) * time.Second
	}
	if a.cfg.RequireExp != nil {
		a.requireExp = *a.cfg.RequireExp
	}
	if a.cfg.DefaultMode != nil {
		if *a.cfg.DefaultMode < 0 || *a.cfg.DefaultMode > 2 {
			return nil, errors.New("jwt-auth configuration: default_mode must be 0, 1 or 2")
		}
		a.defaultMode = *a.cfg.DefaultMode
	}
	if a.cfg.Claim == "" {
		a.cfg.Claim = "relay"
	}
	for i, kc := range a.cfg.Keys {
		k, err := parseKey(kc)
		if err != nil {
			return nil, fmt.Errorf("jwt-auth configuration: keys[%d]: %w", i, err)
		}
		a.keys = append(a.keys, k)
	}
	return a, nil
}

func parseKey(kc keyConfig) (key, error) {
	k := key{kid: kc.KID, alg: kc.Alg}
	switch kc.Alg {
	case "HS256":
		switch {
		case kc.SecretBase64 != "":
			b, err := decodeB64(kc.SecretBase64)
			if err != nil {
				return k, fmt.Errorf("secret_base64: %w", err)
			}
			k.secret = b
		default:
			k.secret = []byte(kc.Secret)
		}
		if len(k.secret) < 32 {
			return k, errors.New("HS256 secret shorter than 32 bytes")
		}
	case "EdDSA":
		b, err := publicKeyBytes(kc.PublicKey)
		if err != nil {
			return k, err
		}
		// A PKIX Ed25519 key is a 12-byte header and the 32-byte key.
		if len(b) == 44 && bytes.HasPrefix(b, []byte{0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00}) {
			b = b[12:]
		}
		if len(b) != ed25519.PublicKeySize {
			return k, errors.New("EdDSA public_key is not an Ed25519 key")
		}
		k.ed = ed25519.PublicKey(b)
	case "ES256":
		b, err := publicKeyBytes(kc.PublicKey)
		if err != nil {
			return k, err
		}
		// A PKIX P-256 key is a 26-byte header and the 65-byte point.
		hdr := []byte{0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00}
		if len(b) == 91 && bytes.HasPrefix(b, hdr) {
			b = b[26:]
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), b)
		if err != nil {
			return k, fmt.Errorf("ES256 public_key: %w", err)
		}
		k.ec = pub
	default:
		return k, fmt.Errorf("alg %q is not supported (HS256, ES256, EdDSA)", kc.Alg)
	}
	return k, nil
}

func publicKeyBytes(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("public_key is empty")
	}
	if strings.HasPrefix(s, "-----BEGIN") {
		blk, _ := pem.Decode([]byte(s))
		if blk == nil {
			return nil, errors.New("public_key: bad PEM")
		}
		return blk.Bytes, nil
	}
	return decodeB64(s)
}

func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "+/") {
		return base64.RawStdEncoding.DecodeString(s)
	}
	return base64.RawURLEncoding.DecodeString(s)
}

// looksLikeJWT reports whether a JOIN token is meant as a JWT: three
// base64url parts separated by dots. Other tokens (static or grant tokens)
// are left to the relay.
func looksLikeJWT(tok string) bool {
	if strings.Count(tok, ".") != 2 || len(tok) < 16 {
		return false
	}
	for _, c := range []byte(tok) {
		if !(c == '.' || c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

type grants struct {
	Channels  []string        `json:"channels"`
	Protocols []string        `json:"protocols"`
	Mode      *int            `json:"mode"`
	Authority bool            `json:"authority"`
	Extra     json.RawMessage `json:"extra"`
}

func (a *authorizer) authorize(j *sdk.Join) sdk.Verdict {
	if a == nil || !looksLikeJWT(j.Token) {
		return sdk.Continue()
	}
	claims, code, msg := a.verify(j.Token, j.Now)
	if code != "" {
		return sdk.Deny(code, msg)
	}
	var g grants
	if raw, ok := claims[a.cfg.Claim]; ok {
		if err := json.Unmarshal(raw, &g); err != nil {
			return sdk.Deny(codeMalformed, "the "+a.cfg.Claim+" claim is not an object of grants")
		}
	}
	if !matchAny(g.Channels, j.Channel.Name) {
		return sdk.Deny(codeWrongChannel, "the token does not grant channel "+j.Channel.Name)
	}
	if !matchAny(g.Protocols, j.Channel.Protocol) {
		return sdk.Deny(codeWrongProtocol, "the token does not grant protocol "+j.Channel.Protocol)
	}
	mode := a.defaultMode
	if g.Mode != nil {
		if *g.Mode < 0 || *g.Mode > 2 {
			return sdk.Deny(codeMalformed, "mode claim outside 0..2")
		}
		mode = *g.Mode
	}
	extra, err := a.extra(g.Extra, claims)
	if err != nil {
		return sdk.Deny(codeMalformed, err.Error())
	}
	v := sdk.Allow().WithMode(mode).WithAuthority(g.Authority)
	if extra != nil {
		v = v.WithExtra(extra)
	}
	return v
}

// matchAny reports whether name matches one of the patterns: an exact name,
// "*", or a prefix ending in "*".
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if p == name || p == "*" || strings.HasSuffix(p, "*") && strings.HasPrefix(name, p[:len(p)-1]) {
			return true
		}
	}
	return false
}

func (a *authorizer) extra(base json.RawMessage, claims map[string]json.RawMessage) ([]byte, error) {
	obj := map[string]json.RawMessage{}
	if len(base) > 0 && string(base) != "null" {
		if err := json.Unmarshal(base, &obj); err != nil {
			return nil, errors.New("extra claim is not an object")
		}
	}
	for _, c := range a.cfg.ExtraClaims {
		if v, ok := claims[c]; ok {
			obj[c] = v
		}
	}
	if len(obj) == 0 {
		return nil, nil
	}
	return json.Marshal(obj)
}

// verify checks the token's signature and time and audience claims and
// returns its claims, or an errorcode and message.
func (a *authorizer) verify(tok string, now time.Time) (map[string]json.RawMessage, string, string) {
	parts := strings.Split(tok, ".")
	hb, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	pb, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, codeMalformed, "the token is not valid base64url"
	}
	var hdr struct {
		Alg string `json:"alg"`
		KID string `json:"kid"`
	}
	if err := json.Unmarshal(hb, &hdr); err != nil {
		return nil, codeMalformed, "the token header is not JSON"
	}
	signed := []byte(tok[:len(parts[0])+1+len(parts[1])])
	found, good := false, false
	for _, k := range a.keys {
		if k.alg != hdr.Alg || (hdr.KID != "" && k.kid != "" && k.kid != hdr.KID) {
			continue
		}
		found = true
		if k.verify(signed, sig) {
			good = true
			break
		}
	}
	if !found {
		return nil, codeUnknownKey, "no key for alg " + hdr.Alg + " kid " + hdr.KID
	}
	if !good {
		return nil, codeBadSignature, "the token's signature is invalid"
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(pb, &claims); err != nil {
		return nil, codeMalformed, "the token payload is not a JSON object"
	}
	if raw, ok := claims["exp"]; ok {
		exp, ok := numericDate(raw)
		if !ok {
			return nil, codeMalformed, "exp is not a number"
		}
		if !now.Before(exp.Add(a.leeway)) {
			return nil, codeExpired, "the token expired at " + exp.UTC().Format(time.RFC3339)
		}
	} else if a.requireExp {
		return nil, codeMissingExpires, "the token has no exp"
	}
	if raw, ok := claims["nbf"]; ok {
		nbf, ok := numericDate(raw)
		if !ok {
			return nil, codeMalformed, "nbf is not a number"
		}
		if now.Add(a.leeway).Before(nbf) {
			return nil, codeNotYetValid, "the token is not valid before " + nbf.UTC().Format(time.RFC3339)
		}
	}
	if a.cfg.Issuer != "" {
		var iss string
		if json.Unmarshal(claims["iss"], &iss) != nil || iss != a.cfg.Issuer {
			return nil, codeWrongIssuer, "the token was not issued by " + a.cfg.Issuer
		}
	}
	if a.cfg.Audience != "" && !hasAudience(claims["aud"], a.cfg.Audience) {
		return nil, codeWrongAudience, "the token is not meant for audience " + a.cfg.Audience
	}
	return claims, "", ""
}

func numericDate(raw json.RawMessage) (time.Time, bool) {
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}

func hasAudience(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		for _, a := range many {
			if a == want {
				return true
			}
		}
	}
	return false
}

func (k key) verify(signed, sig []byte) bool {
	switch k.alg {
	case "HS256":
		m := hmac.New(sha256.New, k.secret)
		m.Write(signed)
		return hmac.Equal(m.Sum(nil), sig)
	case "EdDSA":
		return ed25519.Verify(k.ed, signed, sig)
	case "ES256":
		if len(sig) != 64 {
			return false
		}
		h := sha256.Sum256(signed)
		r := new(big.Int).SetBytes(sig[:32])
		s := new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.ec, h[:], r, s)
	}
	return false
}
