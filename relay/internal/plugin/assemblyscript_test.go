package plugin_test

import (
	"context"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
)

// TestAssemblyScriptPlugin runs the AssemblyScript example, built from
// source, in the real host: the ABI works for a guest without the Go SDK.
func TestAssemblyScriptPlugin(t *testing.T) {
	path := plugintest.BuildAssemblyScript(t)
	h, logs := load(t, plugin.Config{Plugins: []plugin.Spec{{Path: path}}})
	if !h.Enabled(plugin.FilterMessage) || h.Enabled(plugin.AuthorizeJoin) || h.Enabled(plugin.OnTokenCreate) {
		t.Fatal("the example implements filter-message only")
	}
	out := h.FilterMessage(context.Background(), msg("shout", `{"text":"HEY"}`))
	if out.Action != plugin.Reject || out.ErrorCode != "as_no_shouting" || out.Error != "no shouting, please" {
		t.Fatalf("shout: %+v", out)
	}
	out = h.FilterMessage(context.Background(), msg("say", `{"text":"hey"}`))
	if out.Action != plugin.Deliver || string(out.Body) != `{"text":"hey"}` {
		t.Fatalf("say: %+v", out)
	}
	if !strings.Contains(logs.String(), `msg="refused a shout" plugin=no-shouting`) {
		t.Errorf("log: %s", logs.String())
	}
	// Larger than its 64 KiB buffer: the host reports bad output and the
	// next call still works.
	out = h.FilterMessage(context.Background(), msg("say", `{"text":"`+strings.Repeat("x", 70<<10)+`"}`))
	if out.ErrorCode != plugin.CodeBadOutput {
		t.Fatalf("oversized: %+v", out)
	}
	if out := h.FilterMessage(context.Background(), msg("shout", `{}`)); out.ErrorCode != "as_no_shouting" {
		t.Fatalf("after failure: %+v", out)
	}
}
