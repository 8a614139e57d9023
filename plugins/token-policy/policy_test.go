package main

import (
	"testing"
	"time"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

func TestCheck(t *testing.T) {
	p, err := newPolicy([]byte(`{"protocols":["chat","admin"],"max_lifetime_seconds":10,"max_clientmode":1,"makeauth_protocols":["admin"],"issuer":"relay-eu"}`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.UnixMilli(1_800_000_000_123)
	tests := []struct {
		name     string
		req      sdk.TokenRequest
		kind     sdk.VerdictKind
		code     string
		extra    string
		lifetime time.Duration
		mode     int
	}{
		{"caps lifetime and mode, stamps extra", sdk.TokenRequest{Channel: sdk.Channel{Protocol: "chat"}, ClientMode: 2, Lifetime: 30 * time.Second, Extra: []byte(`{"user":"ann"}`), Now: now},
			sdk.KindContinue, "", `{"user":"ann","issuer":"relay-eu","issued_at":1800000000123}`, 10 * time.Second, 1},
		{"keeps what is under the caps", sdk.TokenRequest{Channel: sdk.Channel{Protocol: "admin"}, ClientMode: 0, MakeAuth: true, Lifetime: 5 * time.Second, Extra: []byte(`{"issuer":"forged"}`), Now: now},
			sdk.KindContinue, "", `{"issuer":"relay-eu","issued_at":1800000000123}`, 0, -1},
		{"protocol not allowed", sdk.TokenRequest{Channel: sdk.Channel{Protocol: "video"}}, sdk.KindDeny, codeProtocol, "", 0, -1},
		{"makeauth not allowed", sdk.TokenRequest{Channel: sdk.Channel{Protocol: "chat"}, MakeAuth: true}, sdk.KindDeny, codeMakeAuth, "", 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := p.check(&tt.req)
			if v.Kind() != tt.kind || v.ErrorCode() != tt.code {
				t.Fatalf("got %v %q, want %v %q", v.Kind(), v.ErrorCode(), tt.kind, tt.code)
			}
			if x, _ := v.Extra(); string(x) != tt.extra {
				t.Errorf("extra %s, want %s", x, tt.extra)
			}
			if l, set := v.Lifetime(); (tt.lifetime != 0) != set || l != tt.lifetime {
				t.Errorf("lifetime %v (set %v), want %v", l, set, tt.lifetime)
			}
			if m, set := v.ClientMode(); (tt.mode >= 0) != set || (set && m != tt.mode) {
				t.Errorf("clientmode %d (set %v), want %d", m, set, tt.mode)
			}
		})
	}
}

func TestBadConfiguration(t *testing.T) {
	for _, cfg := range []string{``, `{"max_lifetime_seconds":-1}`, `{"max_clientmode":3}`, `{"protocol":["x"]}`} {
		if _, err := newPolicy([]byte(cfg)); err == nil {
			t.Errorf("configuration %s accepted", cfg)
		}
	}
}

func TestMissingConfigurationIsRequired(t *testing.T) {
	for _, cfg := range []string{``, " \n"} {
		_, err := newPolicy([]byte(cfg))
		if err == nil || err.Error() != "token-policy configuration is required: a JSON object, see its README.md" {
			t.Errorf("configuration %q: %v", cfg, err)
		}
	}
}
