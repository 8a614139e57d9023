package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

// claims are a token's payload, indexed but not decoded: encoding/json is
// slow in the sandbox (a plain decode of a token's claims costs more than
// the rest of a JOIN), so values are read from the raw text on demand.
type claims struct{ body sdk.Body }

func parseClaims(raw []byte) (claims, bool) {
	b, err := sdk.NewBody(raw)
	return claims{b}, err == nil
}

// get returns the top-level claim name.
func (c claims) get(name string) (sdk.Value, bool) { return c.body.Field(name) }

// str returns the top-level claim name when it is a string.
func (c claims) str(name string) (string, bool) {
	v, ok := c.get(name)
	if !ok {
		return "", false
	}
	return v.String()
}

// lookup finds the claim at path: a top-level claim of that exact name
// (Auth0's namespaced claims such as "https://app.example/roles" contain
// dots), or else a dotted path into nested objects ("app_metadata.team").
func (c claims) lookup(path string) (sdk.Value, bool) {
	if v, ok := c.get(path); ok {
		return v, true
	}
	for i := 0; i < len(path); i++ {
		if path[i] != '.' {
			continue
		}
		raw, ok := c.get(path[:i])
		if !ok || raw.Kind() != sdk.KindObject {
			continue
		}
		inner, ok := parseClaims(raw)
		if !ok {
			continue
		}
		if v, ok := inner.lookup(path[i+1:]); ok {
			return v, true
		}
	}
	return nil, false
}

// stringList decodes a JSON array of strings. Strings without escapes
// (the usual case: audiences, roles, channel patterns) are cut out of the
// text directly; anything else goes through encoding/json.
func stringList(v sdk.Value) ([]string, bool) {
	if v.Kind() != sdk.KindArray {
		return nil, false
	}
	var list []string
	i := skipSpace(v, 1)
	if i < len(v) && v[i] == ']' {
		return list, skipSpace(v, i+1) == len(v)
	}
	for i < len(v) && v[i] == '"' {
		end := i + 1
		for end < len(v) && v[end] != '"' && v[end] != '\\' && v[end] >= 0x20 && v[end] < 0x80 {
			end++
		}
		if end >= len(v) || v[end] != '"' {
			break // an escape or non-ASCII text: the slow path decides
		}
		list = append(list, string(v[i+1:end]))
		i = skipSpace(v, end+1)
		switch {
		case i < len(v) && v[i] == ',':
			i = skipSpace(v, i+1)
		case i < len(v) && v[i] == ']' && skipSpace(v, i+1) == len(v):
			return list, true
		default:
			return nil, false
		}
	}
	list = nil
	return list, json.Unmarshal(v, &list) == nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// safeValue reports whether s may be put into a channel or protocol name
// by a template: 1 to 128 characters of A-Z a-z 0-9 - _ . @ | +. In
// particular a claim never brings a "*" (which would widen the grant), a
// "/", a ":" (so "org:{org_id}:*" cannot be confused across values) or a
// space.
func safeValue(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '@' || c == '|' || c == '+') {
			return false
		}
	}
	return true
}

// claimText returns a claim as text for a template: a string, or an
// integer written in decimal. Anything else does not substitute.
func claimText(v sdk.Value) (string, bool) {
	if s, ok := v.String(); ok {
		return s, true
	}
	if n, ok := v.Int(); ok {
		return strconv.FormatInt(n, 10), true
	}
	return "", false
}

// template is a channel or protocol pattern with {claim} placeholders: the
// literal parts and, between them, the claim paths.
type template struct {
	text  string
	parts []string // literal, path, literal, path, ..., literal
}

func parseTemplate(s string) (template, error) {
	t := template{text: s}
	if s == "" {
		return t, errors.New("empty")
	}
	if i := strings.IndexByte(s, '*'); i >= 0 && i != len(s)-1 {
		return t, errors.New(`"*" may only end the pattern`)
	}
	rest := s
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return t, errors.New(`"}" without "{"`)
			}
			t.parts = append(t.parts, rest)
			return t, nil
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return t, errors.New(`"{" without "}"`)
		}
		path := rest[open+1 : open+end]
		if path == "" || strings.ContainsAny(path, "{*") {
			return t, fmt.Errorf("bad placeholder {%s}", path)
		}
		if strings.IndexByte(rest[:open], '}') >= 0 {
			return t, errors.New(`"}" without "{"`)
		}
		t.parts = append(t.parts, rest[:open], path)
		rest = rest[open+end+1:]
	}
}

// expand substitutes the claims; false when a claim is missing or not a
// safe value, and then the template grants nothing.
func (t template) expand(c claims) (string, bool) {
	if len(t.parts) == 1 {
		return t.parts[0], true
	}
	var b strings.Builder
	for i, p := range t.parts {
		if i%2 == 0 {
			b.WriteString(p)
			continue
		}
		raw, ok := c.lookup(p)
		if !ok {
			return "", false
		}
		v, ok := claimText(raw)
		if !ok || !safeValue(v) {
			return "", false
		}
		b.WriteString(v)
	}
	return b.String(), true
}

// matchPattern reports whether name matches an expanded pattern: exactly,
// "*", or a prefix ending in "*". Only the configuration's own "*" can end
// a pattern: a claim value never holds one.
func matchPattern(pattern, name string) bool {
	return pattern == name || pattern == "*" || strings.HasSuffix(pattern, "*") && strings.HasPrefix(name, pattern[:len(pattern)-1])
}

// grantConfig is one claim template of "grants".
type grantConfig struct {
	Channel   string     `json:"channel"`
	Protocol  string     `json:"protocol"`
	Mode      *int       `json:"mode"`
	Authority bool       `json:"authority"`
	When      *condition `json:"when"`
}

// condition limits a template to tokens whose claim contains (a string in
// an array, a word of a space-separated string such as scope, or the
// string itself) or equals a value.
type condition struct {
	Claim    string          `json:"claim"`
	Contains *string         `json:"contains"`
	Equals   json.RawMessage `json:"equals"`
}

type grant struct {
	channel, protocol template
	mode              *int
	authority         bool
	when              *condition
}

func parseGrant(g grantConfig) (grant, error) {
	var out grant
	var err error
	if out.channel, err = parseTemplate(g.Channel); err != nil {
		return out, fmt.Errorf("channel %q: %w", g.Channel, err)
	}
	if g.Protocol == "" {
		g.Protocol = "*"
	}
	if out.protocol, err = parseTemplate(g.Protocol); err != nil {
		return out, fmt.Errorf("protocol %q: %w", g.Protocol, err)
	}
	if g.Mode != nil && (*g.Mode < 0 || *g.Mode > 2) {
		return out, errors.New("mode must be 0, 1 or 2")
	}
	if w := g.When; w != nil {
		if w.Claim == "" || (w.Contains == nil) == (w.Equals == nil) {
			return out, errors.New(`when needs "claim" and one of "contains" or "equals"`)
		}
	}
	out.mode, out.authority, out.when = g.Mode, g.Authority, g.When
	return out, nil
}

// holds reports whether the condition is true of the claims.
func (w *condition) holds(c claims) bool {
	raw, ok := c.lookup(w.Claim)
	if !ok {
		return false
	}
	if w.Equals != nil {
		var a, b any
		return json.Unmarshal(raw, &a) == nil && json.Unmarshal(w.Equals, &b) == nil && fmt.Sprint(a) == fmt.Sprint(b)
	}
	if list, ok := stringList(raw); ok {
		for _, s := range list {
			if s == *w.Contains {
				return true
			}
		}
		return false
	}
	if s, ok := raw.String(); ok {
		for _, word := range strings.Fields(s) {
			if word == *w.Contains {
				return true
			}
		}
	}
	return false
}

// relayGrants is the relay claim: grants the application wrote for the
// relay itself.
type relayGrants struct {
	Channels  []string
	Protocols []string
	Mode      *int
	Authority bool
	Extra     json.RawMessage
}

// parseRelayGrants reads the relay claim {"channels", "protocols", "mode",
// "authority", "extra"}; other fields are ignored.
func parseRelayGrants(v sdk.Value) (*relayGrants, bool) {
	if v.Kind() != sdk.KindObject {
		return nil, false
	}
	b, err := sdk.NewBody(v)
	if err != nil {
		return nil, false
	}
	rg := &relayGrants{}
	for _, f := range []struct {
		name string
		dst  *[]string
	}{{"channels", &rg.Channels}, {"protocols", &rg.Protocols}} {
		if x, ok := b.Field(f.name); ok && x.Kind() != sdk.KindNull {
			if *f.dst, ok = stringList(x); !ok {
				return nil, false
			}
		}
	}
	if x, ok := b.Field("mode"); ok && x.Kind() != sdk.KindNull {
		n, ok := x.Int()
		if !ok || n < -1<<31 || n > 1<<31 {
			return nil, false
		}
		m := int(n)
		rg.Mode = &m
	}
	if x, ok := b.Field("authority"); ok && x.Kind() != sdk.KindNull {
		if rg.Authority, ok = x.Bool(); !ok {
			return nil, false
		}
	}
	if x, ok := b.Field("extra"); ok {
		rg.Extra = json.RawMessage(x)
	}
	return rg, true
}

// decision is what a token grants on one channel.
type decision struct {
	mode      *int
	authority bool
	// channelSeen is true when some grant matched the channel name, so a
	// refusal is about the protocol.
	channelSeen bool
	ok          bool
}

// decide finds the first grant for (channel, protocol): the relay claim's,
// then the templates in order.
func decide(rg *relayGrants, templates []grant, c claims, channel, protocol string) decision {
	var d decision
	if rg != nil && matchAny(rg.Channels, channel) {
		d.channelSeen = true
		if matchAny(rg.Protocols, protocol) {
			return decision{mode: rg.Mode, authority: rg.Authority, channelSeen: true, ok: true}
		}
	}
	for _, g := range templates {
		if g.when != nil && !g.when.holds(c) {
			continue
		}
		ch, ok := g.channel.expand(c)
		if !ok || !matchPattern(ch, channel) {
			continue
		}
		d.channelSeen = true
		if p, ok := g.protocol.expand(c); ok && matchPattern(p, protocol) {
			return decision{mode: g.mode, authority: g.authority, channelSeen: true, ok: true}
		}
	}
	return d
}

// matchAny reports whether name matches one of the relay claim's patterns.
func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if matchPattern(p, name) {
			return true
		}
	}
	return false
}

// extraClaims maps a key of the member's extra to a claim path. The
// configuration gives either a list of paths (each its own key) or an
// object {"key": "path"}.
type extraClaims []struct{ key, path string }

func (e *extraClaims) UnmarshalJSON(b []byte) error {
	var list []string
	if json.Unmarshal(b, &list) == nil {
		for _, p := range list {
			*e = append(*e, struct{ key, path string }{p, p})
		}
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return errors.New("extra_claims: want a list of claim paths or an object of key to claim path")
	}
	for k, p := range m {
		*e = append(*e, struct{ key, path string }{k, p})
	}
	return nil
}
