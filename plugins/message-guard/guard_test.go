package main

import (
	"strings"
	"testing"

	sdk "github.com/relay-project/relay/plugin-sdk"
)

func TestFilter(t *testing.T) {
	g, err := newGuard([]byte(`{
		"protocols": {
			"chat": {"commands": ["say", "typing"], "max_body_bytes": 64, "required": ["text"], "redact": ["password", "card"]},
			"ops":  {"commands": ["restart"], "exempt_authorities": true},
			"*":    {"max_body_bytes": 16}
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, protocol, cmd, body string
		auth                      bool
		kind                      sdk.VerdictKind
		code, wantBody            string
	}{
		{"allowed command passes", "chat", "say", `{"text":"hi"}`, false, sdk.KindContinue, "", ""},
		{"unknown command", "chat", "shout", `{"text":"hi"}`, false, sdk.KindDeny, codeCommand, ""},
		{"body too large", "chat", "say", `{"text":"` + strings.Repeat("x", 60) + `"}`, false, sdk.KindDeny, codeTooLarge, ""},
		{"missing required field", "chat", "typing", `{"who":1}`, false, sdk.KindDeny, codeMissing, ""},
		{"redaction keeps order", "chat", "say", `{"password":"hunter2","text":"hi","card":4111}`, false, sdk.KindContinue, "", `{"password":"[redacted]","text":"hi","card":"[redacted]"}`},
		{"authority exempt", "ops", "anything", `{}`, true, sdk.KindContinue, "", ""},
		{"non-authority not exempt", "ops", "anything", `{}`, false, sdk.KindDeny, codeCommand, ""},
		{"default rule", "misc", "x", `{"long":"aaaaaaaaaaaaaa"}`, false, sdk.KindDeny, codeTooLarge, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := sdk.NewBody([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			v := g.filter(&sdk.Message{Channel: sdk.Channel{Name: "c", Protocol: tt.protocol}, Cmd: tt.cmd, Body: body, Authority: tt.auth})
			if v.Kind() != tt.kind || v.ErrorCode() != tt.code {
				t.Fatalf("got %v %q (%s), want %v %q", v.Kind(), v.ErrorCode(), v.Message(), tt.kind, tt.code)
			}
			got, set := v.Body()
			if set != (tt.wantBody != "") || string(got) != tt.wantBody {
				t.Fatalf("body %s (set %v), want %s", got, set, tt.wantBody)
			}
		})
	}
}

func TestBadConfiguration(t *testing.T) {
	for _, cfg := range []string{``, `{}`, `{"protocols":{}}`, `{"protocols":{"x":null}}`, `{"protocols":{"x":{"max_body_bytes":-1}}}`, `{"protocols":{"x":{"comands":[]}}}`} {
		if _, err := newGuard([]byte(cfg)); err == nil {
			t.Errorf("configuration %s accepted", cfg)
		}
	}
}

func TestMissingConfigurationIsRequired(t *testing.T) {
	for _, cfg := range []string{``, " \n"} {
		_, err := newGuard([]byte(cfg))
		if err == nil || err.Error() != "message-guard configuration is required: a JSON object, see its README.md" {
			t.Errorf("configuration %q: %v", cfg, err)
		}
	}
}
