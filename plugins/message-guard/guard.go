package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

// Error codes sent to a sender whose message is refused.
const (
	codeCommand  = "guard_command_not_allowed"
	codeTooLarge = "guard_body_too_large"
	codeMissing  = "guard_missing_field"
)

// rule is the policy for one protocol.
type rule struct {
	// Commands lists the allowed cmd values; empty allows every command.
	Commands []string `json:"commands"`
	// MaxBodyBytes caps the body's JSON size; 0 means no cap.
	MaxBodyBytes int `json:"max_body_bytes"`
	// Required lists fields every message must have.
	Required []string `json:"required"`
	// Redact lists fields whose values are replaced before delivery.
	Redact []string `json:"redact"`
	// Authorities exempts authorities from this rule. Default false.
	ExemptAuthorities bool `json:"exempt_authorities"`

	commands map[string]bool
}

type config struct {
	// Protocols maps a protocol to its rule; "*" applies to protocols
	// without their own rule. A protocol without any rule is not filtered.
	Protocols map[string]*rule `json:"protocols"`
	// Replacement is the JSON value redacted fields get. Default "[redacted]".
	Replacement json.RawMessage `json:"replacement"`
}

type guard struct {
	cfg         config
	replacement []byte
}

func newGuard(raw []byte) (*guard, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		// The host adds which variable it read (RELAY_PLUGIN_CONFIG_<NAME>).
		return nil, errors.New("message-guard configuration is required: a JSON object, see its README.md")
	}
	g := &guard{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g.cfg); err != nil {
		return nil, fmt.Errorf("message-guard configuration: %w", err)
	}
	if len(g.cfg.Protocols) == 0 {
		return nil, errors.New("message-guard configuration: protocols is empty")
	}
	g.replacement = []byte(`"[redacted]"`)
	if len(g.cfg.Replacement) > 0 {
		g.replacement = g.cfg.Replacement
	}
	for name, r := range g.cfg.Protocols {
		if r == nil {
			return nil, fmt.Errorf("message-guard configuration: protocol %q has no rule", name)
		}
		if r.MaxBodyBytes < 0 {
			return nil, fmt.Errorf("message-guard configuration: protocol %q: max_body_bytes is negative", name)
		}
		r.commands = map[string]bool{}
		for _, c := range r.Commands {
			r.commands[c] = true
		}
	}
	return g, nil
}

func (g *guard) filter(m *sdk.Message) sdk.Verdict {
	if g == nil {
		return sdk.Continue()
	}
	r := g.cfg.Protocols[m.Channel.Protocol]
	if r == nil {
		if r = g.cfg.Protocols["*"]; r == nil {
			return sdk.Continue()
		}
	}
	if r.ExemptAuthorities && m.Authority {
		return sdk.Continue()
	}
	if len(r.commands) > 0 && !r.commands[m.Cmd] {
		return sdk.Deny(codeCommand, "command "+strconv.Quote(m.Cmd)+" is not allowed on protocol "+m.Channel.Protocol)
	}
	if r.MaxBodyBytes > 0 && len(m.Body.Raw()) > r.MaxBodyBytes {
		return sdk.Deny(codeTooLarge, "message body is "+strconv.Itoa(len(m.Body.Raw()))+" bytes, the limit is "+strconv.Itoa(r.MaxBodyBytes))
	}
	for _, f := range r.Required {
		if !m.Body.Has(f) {
			return sdk.Deny(codeMissing, "message lacks field "+strconv.Quote(f))
		}
	}
	var e *sdk.BodyEditor
	for _, f := range r.Redact {
		if m.Body.Has(f) {
			if e == nil {
				e = m.Body.Edit()
			}
			e.Set(f, g.replacement)
		}
	}
	if e != nil {
		return sdk.Continue().WithBody(e.Bytes())
	}
	return sdk.Continue()
}
