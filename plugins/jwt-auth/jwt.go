package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

// Error codes sent to a client whose JWT is refused.
const (
	codeMalformed      = "jwt_malformed"
	codeUnsupportedAlg = "jwt_unsupported_alg"
	codeAlgMismatch    = "jwt_alg_mismatch"
	codeUnknownKey     = "jwt_unknown_key"
	codeBadSignature   = "jwt_bad_signature"
	codeExpired        = "jwt_expired"
	codeNotYetValid    = "jwt_not_yet_valid"
	codeWrongAudience  = "jwt_wrong_audience"
	codeWrongIssuer    = "jwt_wrong_issuer"
	codeWrongChannel   = "jwt_channel_not_allowed"
	codeWrongProtocol  = "jwt_protocol_not_allowed"
	codeMissingExpires = "jwt_missing_exp"
	// codeUnavailable is the relay's own code for "cannot serve this now":
	// the issuer's keys have not been fetched yet.
	codeUnavailable = "unavailable"
)

// maxTokenBytes bounds the token a JOIN may carry; identity providers'
// tokens are 1 to 3 KiB.
const maxTokenBytes = 16 << 10

// maxSignatureChecks bounds the keys one token without a kid is tried
// against, so a large key set cannot make a JOIN expensive.
const maxSignatureChecks = 4

// issuerConfig is one issuer's part of the configuration. The top level of
// the configuration is an issuerConfig too; the entries of "issuers"
// inherit audience, claim, grants and extra_claims from it when they do
// not set them.
type issuerConfig struct {
	// Issuer, when set, must equal the token's iss claim, and picks this
	// entry for tokens with that iss.
	Issuer string `json:"issuer"`
	// Audience, when set, must appear in the token's aud claim.
	Audience *string     `json:"audience"`
	Keys     []keyConfig `json:"keys"`
	// JWKS is a JSON Web Key Set written into the configuration.
	JWKS json.RawMessage `json:"jwks"`
	// JWKSURL is a JWKS the relay fetches (it must be listed in
	// RELAY_PLUGIN_RESOURCES_JWT_AUTH).
	JWKSURL string `json:"jwks_url"`
	// Claim names the object claim holding the relay grants. Default "relay".
	Claim *string `json:"claim"`
	// Grants are claim templates granting channels from ordinary claims.
	Grants []grantConfig `json:"grants"`
	// ExtraClaims are claims copied into the member's extra.
	ExtraClaims *extraClaims `json:"extra_claims"`
}

// config is the plugin's JSON configuration.
type config struct {
	issuerConfig
	Issuers []issuerConfig `json:"issuers"`
	// LeewaySeconds tolerates clock skew for exp and nbf. Default 30.
	LeewaySeconds *int `json:"leeway_seconds"`
	// RequireExp refuses tokens without exp. Default true.
	RequireExp *bool `json:"require_exp"`
	// DefaultMode is the member's mode when a grant has none. Default 1.
	DefaultMode *int `json:"default_mode"`
}

// issuer is one configured issuer, ready to check tokens.
type issuer struct {
	name     string // Issuer; "" accepts any iss
	audience string
	static   []*key
	claim    string
	grants   []grant
	extra    extraClaims

	// The keys fetched by the relay from jwksURL, parsed again when the
	// resource's version changes.
	jwksURL     string
	remote      []*key
	remoteVer   uint32
	remoteReady bool
}

type authorizer struct {
	issuers     []*issuer
	leeway      time.Duration
	requireExp  bool
	defaultMode int
}

func newAuthorizer(raw []byte) (*authorizer, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		// The host adds which variable it read (RELAY_PLUGIN_CONFIG_<NAME>).
		return nil, errors.New("jwt-auth configuration is required: a JSON object, see its README.md")
	}
	a, err := parseConfig(raw)
	if err != nil {
		return nil, fmt.Errorf("jwt-auth configuration: %w", err)
	}
	return a, nil
}

func parseConfig(raw []byte) (*authorizer, error) {
	var cfg config
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, err
	}
	a := &authorizer{leeway: 30 * time.Second, requireExp: true, defaultMode: 1}
	if cfg.LeewaySeconds != nil {
		a.leeway = time.Duration(*cfg.LeewaySeconds) * time.Second
	}
	if cfg.RequireExp != nil {
		a.requireExp = *cfg.RequireExp
	}
	if cfg.DefaultMode != nil {
		if *cfg.DefaultMode < 0 || *cfg.DefaultMode > 2 {
			return nil, errors.New("default_mode must be 0, 1 or 2")
		}
		a.defaultMode = *cfg.DefaultMode
	}
	top := cfg.issuerConfig
	entries := []issuerConfig{}
	if len(top.Keys) > 0 || top.JWKS != nil || top.JWKSURL != "" {
		entries = append(entries, top)
	} else if top.Issuer != "" {
		return nil, errors.New("issuer is set but there are no keys, jwks or jwks_url for it")
	}
	for _, e := range cfg.Issuers {
		if e.Audience == nil {
			e.Audience = top.Audience
		}
		if e.Claim == nil {
			e.Claim = top.Claim
		}
		if e.Grants == nil {
			e.Grants = top.Grants
		}
		if e.ExtraClaims == nil {
			e.ExtraClaims = top.ExtraClaims
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil, errors.New("keys is empty: give keys, jwks or jwks_url (or issuers)")
	}
	seen := map[string]bool{}
	for i, e := range entries {
		where := "issuer " + e.Issuer
		if e.Issuer == "" {
			where = "the issuer entry without issuer"
		}
		if seen[e.Issuer] {
			return nil, fmt.Errorf("%s is configured twice", where)
		}
		seen[e.Issuer] = true
		is, err := parseIssuer(e)
		if err != nil {
			if len(entries) > 1 || len(cfg.Issuers) > 0 {
				return nil, fmt.Errorf("issuers[%d] (%s): %w", i, where, err)
			}
			return nil, err
		}
		a.issuers = append(a.issuers, is)
	}
	return a, nil
}

func parseIssuer(e issuerConfig) (*issuer, error) {
	is := &issuer{name: e.Issuer, claim: "relay", jwksURL: e.JWKSURL}
	if e.Audience != nil {
		is.audience = *e.Audience
	}
	if e.Claim != nil {
		is.claim = *e.Claim
	}
	if e.ExtraClaims != nil {
		is.extra = *e.ExtraClaims
	}
	for i, kc := range e.Keys {
		k, err := parseKeyConfig(kc)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		is.static = append(is.static, k)
	}
	if e.JWKS != nil {
		keys, skipped, err := parseJWKS(e.JWKS, true)
		if err == nil && len(skipped) > 0 {
			err = errors.New(strings.Join(skipped, "; "))
		}
		if err != nil {
			return nil, fmt.Errorf("jwks: %w", err)
		}
		is.static = append(is.static, keys...)
	}
	for i, g := range e.Grants {
		gr, err := parseGrant(g)
		if err != nil {
			return nil, fmt.Errorf("grants[%d]: %w", i, err)
		}
		is.grants = append(is.grants, gr)
	}
	if is.jwksURL != "" {
		// The first read checks the URL is allowed and, when the relay has
		// it already, that it is a key set.
		if _, err := sdk.ResourceVersion(is.jwksURL); errors.Is(err, sdk.ErrResourceNotAllowed) {
			return nil, fmt.Errorf("jwks_url %s is not fetched by the relay: add it to RELAY_PLUGIN_RESOURCES_JWT_AUTH", is.jwksURL)
		}
		if err := is.refreshRemote(); err != nil {
			return nil, fmt.Errorf("jwks_url %s: %w", is.jwksURL, err)
		}
	}
	return is, nil
}

// refreshRemote parses the fetched key set again when its version changed.
// A set that does not parse keeps the keys parsed before (the relay keeps
// fetching, the identity provider will fix it).
func (is *issuer) refreshRemote() error {
	v, err := sdk.ResourceVersion(is.jwksURL)
	if err != nil || (is.remoteReady && v == is.remoteVer) {
		return nil // unavailable: joins needing these keys get codeUnavailable
	}
	r, err := sdk.ReadResource(is.jwksURL)
	if err != nil {
		return nil
	}
	keys, skipped, err := parseJWKS(r.Data, false)
	is.remoteVer = r.Version
	if err != nil {
		if is.remoteReady {
			sdk.Warn("jwt-auth: the key set at " + is.jwksURL + " does not parse, keeping the previous one: " + err.Error())
			return nil
		}
		return err
	}
	for _, s := range skipped {
		sdk.Info("jwt-auth: " + is.jwksURL + ": skipped " + s)
	}
	is.remote, is.remoteReady = keys, true
	return nil
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

func (a *authorizer) authorize(j *sdk.Join) sdk.Verdict {
	if a == nil || !looksLikeJWT(j.Token) {
		return sdk.Continue()
	}
	is, c, code, msg := a.verify(j.Token, j.Now)
	if code != "" {
		return sdk.Deny(code, msg)
	}
	var rg *relayGrants
	if raw, ok := c.get(is.claim); ok {
		if rg, ok = parseRelayGrants(raw); !ok {
			return sdk.Deny(codeMalformed, "the "+is.claim+" claim is not an object of grants")
		}
	}
	d := decide(rg, is.grants, c, j.Channel.Name, j.Channel.Protocol)
	switch {
	case !d.ok && !d.channelSeen:
		return sdk.Deny(codeWrongChannel, "the token does not grant channel "+j.Channel.Name)
	case !d.ok:
		return sdk.Deny(codeWrongProtocol, "the token does not grant protocol "+j.Channel.Protocol)
	}
	mode := a.defaultMode
	if d.mode != nil {
		if *d.mode < 0 || *d.mode > 2 {
			return sdk.Deny(codeMalformed, "mode claim outside 0..2")
		}
		mode = *d.mode
	}
	var base json.RawMessage
	if rg != nil {
		base = rg.Extra
	}
	extra, err := is.extraOf(base, c)
	if err != nil {
		return sdk.Deny(codeMalformed, err.Error())
	}
	v := sdk.Allow().WithMode(mode).WithAuthority(d.authority)
	if extra != nil {
		v = v.WithExtra(extra)
	}
	return v
}

// extraOf builds the member's extra: the relay claim's extra object with
// the extra_claims added. Without a base it is written directly (keys
// sorted, values as the token has them), not through encoding/json.
func (is *issuer) extraOf(base json.RawMessage, c claims) ([]byte, error) {
	if len(base) > 0 && string(base) != "null" {
		obj := map[string]json.RawMessage{}
		if err := json.Unmarshal(base, &obj); err != nil {
			return nil, errors.New("extra claim is not an object")
		}
		for _, e := range is.extra {
			if v, ok := c.lookup(e.path); ok {
				obj[e.key] = json.RawMessage(v)
			}
		}
		return json.Marshal(obj)
	}
	type kv struct {
		key string
		v   sdk.Value
	}
	var found []kv
	for _, e := range is.extra {
		if v, ok := c.lookup(e.path); ok {
			found = append(found, kv{e.key, v})
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].key < found[j].key })
	out := []byte{'{'}
	for i, f := range found {
		if i > 0 && f.key == found[i-1].key {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, sdk.Quote(f.key)...)
		out = append(out, ':')
		out = append(out, f.v...)
	}
	out = append(out, '}')
	if !json.Valid(out) {
		// The index is lenient; the relay accepts only valid JSON as extra.
		return nil, errors.New("a claim in extra_claims is not valid JSON")
	}
	return out, nil
}

// header is the part of a JOSE header jwt-auth reads.
type header struct {
	Alg, KID string
	Crit     bool
}

// parsed is a token split and decoded, not yet verified.
type parsed struct {
	hdr    header
	claims claims
	signed []byte // the signing input: header "." payload
	sig    []byte
}

// decodeSegment decodes one part of a compact JWS, accepting only the
// canonical spelling: a lenient decoder ignores the unused low bits of the
// last character, so several strings would decode to one signature and a
// token could be re-spelled without the key (a replay cache or a log keyed
// by the token would see two tokens). Line breaks, which Go's decoder also
// skips, never get here: looksLikeJWT leaves such a token to the relay.
func decodeSegment(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(s)
}

// parseToken splits and decodes a compact JWS. It checks only the form.
func parseToken(tok string) (*parsed, string, string) {
	if len(tok) > maxTokenBytes {
		return nil, codeMalformed, fmt.Sprintf("the token is longer than %d bytes", maxTokenBytes)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, codeMalformed, "the token is not three base64url parts"
	}
	hb, err1 := decodeSegment(parts[0])
	pb, err2 := decodeSegment(parts[1])
	sig, err3 := decodeSegment(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return nil, codeMalformed, "the token is not valid base64url"
	}
	p := &parsed{signed: []byte(tok[:len(parts[0])+1+len(parts[1])]), sig: sig}
	h, err := sdk.NewBody(hb)
	if err != nil {
		return nil, codeMalformed, "the token header is not a JSON object"
	}
	p.hdr.Alg, _ = h.String("alg")
	p.hdr.KID, _ = h.String("kid")
	p.hdr.Crit = h.Has("crit")
	if p.hdr.Crit {
		// RFC 7515 4.1.11: extensions we do not understand must be refused.
		return nil, codeMalformed, "the token header has crit extensions, which jwt-auth does not support"
	}
	var ok bool
	if p.claims, ok = parseClaims(pb); !ok {
		return nil, codeMalformed, "the token payload is not a JSON object"
	}
	return p, "", ""
}

// pickIssuer chooses the issuer entry for a token by its (not yet
// verified) iss claim; the signature check that follows uses only that
// entry's keys, so a token cannot borrow another tenant's.
func (a *authorizer) pickIssuer(c claims) (*issuer, bool) {
	iss, _ := c.str("iss")
	var fallback *issuer
	for _, is := range a.issuers {
		switch {
		case is.name != "" && is.name == iss:
			return is, true
		case is.name == "":
			fallback = is
		}
	}
	return fallback, fallback != nil
}

// verify checks the token's signature, times, issuer and audience and
// returns its issuer entry and claims, or an errorcode and message.
func (a *authorizer) verify(tok string, now time.Time) (*issuer, claims, string, string) {
	p, code, msg := parseToken(tok)
	if code != "" {
		return nil, claims{}, code, msg
	}
	if _, ok := algorithms[p.hdr.Alg]; !ok {
		return nil, claims{}, codeUnsupportedAlg, fmt.Sprintf("alg %q is not accepted (%s)", p.hdr.Alg, supportedAlgs())
	}
	is, ok := a.pickIssuer(p.claims)
	if !ok {
		iss, _ := p.claims.str("iss")
		return nil, claims{}, codeWrongIssuer, fmt.Sprintf("the token's issuer %q is not configured", iss)
	}
	if code, msg := is.checkSignature(p); code != "" {
		return nil, claims{}, code, msg
	}
	c := p.claims
	if raw, ok := c.get("exp"); ok {
		exp, ok := numericDate(raw)
		if !ok {
			return nil, claims{}, codeMalformed, "exp is not a number"
		}
		if !now.Before(exp.Add(a.leeway)) {
			return nil, claims{}, codeExpired, "the token expired at " + exp.UTC().Format(time.RFC3339)
		}
	} else if a.requireExp {
		return nil, claims{}, codeMissingExpires, "the token has no exp"
	}
	if raw, ok := c.get("nbf"); ok {
		nbf, ok := numericDate(raw)
		if !ok {
			return nil, claims{}, codeMalformed, "nbf is not a number"
		}
		if now.Add(a.leeway).Before(nbf) {
			return nil, claims{}, codeNotYetValid, "the token is not valid before " + nbf.UTC().Format(time.RFC3339)
		}
	}
	if is.name != "" {
		if iss, ok := c.str("iss"); !ok || iss != is.name {
			return nil, claims{}, codeWrongIssuer, "the token was not issued by " + is.name
		}
	}
	if aud, _ := c.get("aud"); is.audience != "" && !hasAudience(aud, is.audience) {
		return nil, claims{}, codeWrongAudience, "the token is not meant for audience " + is.audience
	}
	return is, c, "", ""
}

// checkSignature finds the token's key among the issuer's and checks the
// signature. The kid, when present, selects the key; the key's type and
// declared algorithm must fit the token's alg.
func (is *issuer) checkSignature(p *parsed) (string, string) {
	if is.jwksURL != "" {
		_ = is.refreshRemote()
	}
	alg, kid := p.hdr.Alg, p.hdr.KID
	var candidates []*key
	named, typed := 0, 0
	consider := func(keys []*key) {
		for _, k := range keys {
			if kid != "" && k.kid != kid {
				continue
			}
			named++
			if k.allows(alg) {
				typed++
				candidates = append(candidates, k)
			}
		}
	}
	consider(is.static)
	consider(is.remote)
	if kid != "" && named == 0 {
		// Keys configured without a kid serve tokens with any kid.
		for _, k := range is.static {
			if k.kid == "" {
				named++
				if k.allows(alg) {
					typed++
					candidates = append(candidates, k)
				}
			}
		}
	}
	switch {
	case named == 0 && is.jwksURL != "" && !is.remoteReady:
		return codeUnavailable, "the keys of issuer " + is.name + " have not been fetched yet; try again shortly"
	case named == 0 && kid != "":
		if is.jwksURL != "" {
			// Perhaps the issuer rotated its keys: the relay fetches the set
			// again (at most once per RELAY_PLUGIN_RESOURCE_MIN_REFRESH).
			_, _ = sdk.RefreshResource(is.jwksURL)
			return codeUnknownKey, "no key with kid " + kid + "; the relay is fetching the issuer's keys again, retry shortly"
		}
		return codeUnknownKey, "no key with kid " + kid
	case named == 0:
		return codeUnknownKey, "no key for this token"
	case typed == 0:
		return codeAlgMismatch, "alg " + alg + " does not fit the type or declared algorithm of the key" + kidText(kid)
	}
	for i, k := range candidates {
		if i == maxSignatureChecks {
			break
		}
		if k.verify(alg, p.signed, p.sig) {
			return "", ""
		}
	}
	return codeBadSignature, "the token's signature is invalid"
}

func kidText(kid string) string {
	if kid == "" {
		return "s"
	}
	return " with kid " + kid
}

func numericDate(v sdk.Value) (time.Time, bool) {
	if v.Kind() != sdk.KindNumber {
		return time.Time{}, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f != f || f > 1e15 || f < -1e15 {
		return time.Time{}, false
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9)), true
}

func hasAudience(v sdk.Value, want string) bool {
	if one, ok := v.String(); ok {
		return one == want
	}
	many, _ := stringList(v)
	for _, a := range many {
		if a == want {
			return true
		}
	}
	return false
}
