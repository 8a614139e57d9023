package plugin_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/plugin"
)

func TestRewriteOverTheMessageLimitFailsUnderThePolicy(t *testing.T) {
	for _, policy := range []plugin.Policy{plugin.FailClosed, plugin.FailOpen} {
		t.Run(policy.String(), func(t *testing.T) {
			h, logs := load(t, plugin.Config{
				Plugins:       []plugin.Spec{chaos(t, "chaos", "")},
				MemoryLimitMB: 128, MaxBodyBytes: 65536, Timeout: 2 * time.Second,
				Policies: map[plugin.Hook]plugin.Policy{plugin.FilterMessage: policy},
			})
			out := h.FilterMessage(context.Background(), msg("hugebody", `{"text":"x"}`)) // an 8 MB rewrite
			if policy == plugin.FailClosed && (out.Action != plugin.Reject || out.ErrorCode != plugin.CodeBadOutput) {
				t.Fatalf("closed: got %v %q, want reject %q", out.Action, out.ErrorCode, plugin.CodeBadOutput)
			}
			if policy == plugin.FailOpen && (out.Action != plugin.Deliver || out.Rewritten || string(out.Body) != `{"text":"x"}`) {
				t.Fatalf("open: got %v rewritten=%v body of %d bytes, want the original body", out.Action, out.Rewritten, len(out.Body))
			}
			if !strings.Contains(logs.String(), "over the 65536-byte message limit") {
				t.Errorf("the log does not say why: %s", logs.String())
			}
		})
	}
}

func TestExtraOverTheLimitIsABadOutput(t *testing.T) {
	h, _ := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", "")}, MaxExtraBytes: 4096})
	out := h.AuthorizeJoin(context.Background(), &plugin.JoinRequest{Token: "hugeextra", Channel: "c", Protocol: "p"}) // an 8 KB extra
	if out.Allowed || out.ErrorCode != plugin.CodeBadOutput {
		t.Fatalf("got %+v, want a refusal with %q", out, plugin.CodeBadOutput)
	}
}

func TestTokenLifetimeIsCutToTheMaximum(t *testing.T) {
	h, _ := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", "")}, MaxLifetime: time.Hour})
	out := h.OnTokenCreate(context.Background(), &plugin.TokenRequest{Channel: "c", Protocol: "p",
		Builtin: plugin.TokenOutcome{Allowed: true, Extra: []byte(`{"do":"forever"}`), Lifetime: 30 * time.Second}}) // asks for 1000 h
	if !out.Allowed || out.Lifetime != time.Hour {
		t.Fatalf("got %+v, want allowed with a 1 h lifetime", out)
	}
}

func TestLongJoinTokenIsRefusedBeforeAnyPluginRuns(t *testing.T) {
	var calls atomic.Int64
	h, _ := load(t, plugin.Config{
		Plugins: []plugin.Spec{chaos(t, "chaos", "")}, MaxTokenBytes: 8192,
		Observe: func(string, plugin.Hook, string, time.Duration) { calls.Add(1) },
	})
	join := func(tok string) plugin.JoinOutcome {
		return h.AuthorizeJoin(context.Background(), &plugin.JoinRequest{Token: tok, Channel: "c", Protocol: "p",
			Builtin: plugin.JoinOutcome{ErrorCode: "access_denied"}})
	}
	if out := join(strings.Repeat("x", 8193)); out.Allowed || out.ErrorCode != plugin.CodeTokenTooLarge {
		t.Fatalf("got %+v, want %q", out, plugin.CodeTokenTooLarge)
	}
	if n := calls.Load(); n != 0 {
		t.Fatalf("the plugin ran %d times for a token over the limit", n)
	}
	if out := join("allow"); !out.Allowed {
		t.Fatalf("a short token: %+v", out)
	}
}
