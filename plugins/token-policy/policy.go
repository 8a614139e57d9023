package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

// Error codes sent to a GRANT requester whose token is refused.
const (
	codeProtocol = "policy_protocol_not_allowed"
	codeMakeAuth = "policy_makeauth_not_allowed"
)

type config struct {
	// Protocols lists the protocols tokens may be granted for; empty allows all.
	Protocols []string `json:"protocols"`
	// MaxLifetimeSeconds caps a token's lifetime; 0 means no cap.
	MaxLifetimeSeconds int `json:"max_lifetime_seconds"`
	// MaxClientMode caps the token's client mode (0..2); absent means no cap.
	MaxClientMode *int `json:"max_clientmode"`
	// MakeAuthProtocols lists the protocols for which makeauth tokens may
	// be granted; absent allows makeauth everywhere, [] nowhere.
	MakeAuthProtocols *[]string `json:"makeauth_protocols"`
	// Issuer, when set, is stamped into the token's extra as "issuer",
	// together with "issued_at" (Unix milliseconds).
	Issuer string `json:"issuer"`
}

type policy struct {
	cfg       config
	protocols map[string]bool
	makeauth  map[string]bool
}

func newPolicy(raw []byte) (*policy, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		// The host adds which variable it read (RELAY_PLUGIN_CONFIG_<NAME>).
		return nil, errors.New("token-policy configuration is required: a JSON object, see its README.md")
	}
	p := &policy{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p.cfg); err != nil {
		return nil, fmt.Errorf("token-policy configuration: %w", err)
	}
	if p.cfg.MaxLifetimeSeconds < 0 {
		return nil, errors.New("token-policy configuration: max_lifetime_seconds is negative")
	}
	if m := p.cfg.MaxClientMode; m != nil && (*m < 0 || *m > 2) {
		return nil, errors.New("token-policy configuration: max_clientmode must be 0, 1 or 2")
	}
	if len(p.cfg.Protocols) > 0 {
		p.protocols = set(p.cfg.Protocols)
	}
	if p.cfg.MakeAuthProtocols != nil {
		p.makeauth = set(*p.cfg.MakeAuthProtocols)
	}
	return p, nil
}

func set(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

func (p *policy) check(t *sdk.TokenRequest) sdk.Verdict {
	if p == nil {
		return sdk.Continue()
	}
	proto := t.Channel.Protocol
	if p.protocols != nil && !p.protocols[proto] {
		return sdk.Deny(codeProtocol, "tokens for protocol "+strconv.Quote(proto)+" may not be granted")
	}
	if t.MakeAuth && p.makeauth != nil && !p.makeauth[proto] {
		return sdk.Deny(codeMakeAuth, "makeauth tokens for protocol "+strconv.Quote(proto)+" may not be granted")
	}
	v := sdk.Continue()
	if max := time.Duration(p.cfg.MaxLifetimeSeconds) * time.Second; max > 0 && t.Lifetime > max {
		v = v.WithLifetime(max)
	}
	if m := p.cfg.MaxClientMode; m != nil && t.ClientMode > *m {
		v = v.WithClientMode(*m)
	}
	if p.cfg.Issuer != "" {
		extra := t.Extra
		if len(extra) == 0 {
			extra = []byte("{}")
		}
		body, err := sdk.NewBody(extra)
		if err != nil {
			// The relay only grants objects; an array extra cannot be stamped.
			return sdk.Deny("policy_extra_not_object", "extra must be an object to be stamped")
		}
		now := t.Now
		if now.IsZero() {
			now = sdk.Now()
		}
		e := body.Edit().SetString("issuer", p.cfg.Issuer).Set("issued_at", []byte(strconv.FormatInt(now.UnixMilli(), 10)))
		v = v.WithExtra(e.Bytes())
	}
	return v
}
