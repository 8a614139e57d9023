package plugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

func load(t testing.TB, cfg plugin.Config) (*plugin.Host, *relaytest.LogBuffer) {
	t.Helper()
	logs := &relaytest.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.CacheDir == "" {
		cfg.CacheDir = plugintest.CacheDir(t)
	}
	h, err := plugin.Load(context.Background(), cfg, logger)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	return h, logs
}

func chaos(t testing.TB, name, config string) plugin.Spec {
	return plugin.Spec{Name: name, Path: plugintest.Guest(t, "chaos"), Config: []byte(config)}
}

func msg(cmd, body string) *plugin.MessageRequest {
	return &plugin.MessageRequest{
		ChannelID: 7, Channel: "room", Protocol: "chat", SenderID: 42,
		Mode: 2, Extra: json.RawMessage(`{"role":"user"}`), To: -1, Cmd: cmd, Body: []byte(body),
	}
}

func TestFilterMessageVerdicts(t *testing.T) {
	h, _ := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", "")}})
	tests := []struct {
		name, cmd, body string
		action          plugin.MessageAction
		code            string
		wantBody        string
	}{
		{"pass keeps the body", "pass", `{"text":"hi"}`, plugin.Deliver, "", `{"text":"hi"}`},
		{"drop is silent", "drop", `{}`, plugin.Drop, "", ""},
		{"deny carries the plugin's code", "deny", `{}`, plugin.Reject, "chaos_denied", ""},
		{"rewrite changes one field", "rewrite", `{"a":1,"text":"hi \"you\"","z":[1,{"b":"}"}]}`, plugin.Deliver, "", `{"a":1,"text":"HI \"YOU\"","z":[1,{"b":"}"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := h.FilterMessage(context.Background(), msg(tt.cmd, tt.body))
			if out.Action != tt.action || out.ErrorCode != tt.code {
				t.Fatalf("got action %v code %q (%s), want %v %q", out.Action, out.ErrorCode, out.Error, tt.action, tt.code)
			}
			if tt.action == plugin.Deliver && string(out.Body) != tt.wantBody {
				t.Fatalf("body %s, want %s", out.Body, tt.wantBody)
			}
		})
	}
}

func TestFilterMessageEnvelope(t *testing.T) {
	h, _ := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", "")}})
	req := msg("echo", `{"text":"hi","n":3}`)
	req.Authority, req.To = true, 5
	out := h.FilterMessage(context.Background(), req)
	if !out.Rewritten {
		t.Fatalf("not rewritten: %+v", out)
	}
	var seen map[string]any
	if err := json.Unmarshal(out.Body, &seen); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"channel": "room", "protocol": "chat", "channel_id": 7.0, "sender": 42.0, "authority": true,
		"mode": 2.0, "to": 5.0, "cmd": "echo", "fields": 2.0, "now_ok": true,
	}
	for k, v := range want {
		if seen[k] != v {
			t.Errorf("plugin saw %s = %v, want %v", k, seen[k], v)
		}
	}
	if b, _ := json.Marshal(seen["body"]); string(b) != `{"n":3,"text":"hi"}` {
		t.Errorf("body seen %s", b)
	}
	if b, _ := json.Marshal(seen["extra"]); string(b) != `{"role":"user"}` {
		t.Errorf("extra seen %s", b)
	}
}

func TestMisbehavingPlugins(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	cfg := `{"target":"` + ln.Addr().String() + `"}`
	const timeout = 300 * time.Millisecond
	h, logs := load(t, plugin.Config{
		Plugins:       []plugin.Spec{chaos(t, "chaos", cfg)},
		Timeout:       timeout,
		MemoryLimitMB: 64,
		Instances:     2,
	})

	tests := []struct {
		name string
		cmd  string
		code string
	}{
		{"infinite loop hits the deadline", "loop", plugin.CodeTimeout},
		{"sleeping past the deadline", "sleep", plugin.CodeTimeout},
		{"panic", "panic", plugin.CodeFailed},
		{"memory bomb", "oom", plugin.CodeFailed},
		{"reading a host file", "readfile", plugin.CodeFailed},
		{"opening a socket", "socket", plugin.CodeFailed},
		{"plugin error", "error", plugin.CodeFailed},
		{"invalid errorcode", "badcode", plugin.CodeBadOutput},
		{"body that is not an object", "badbody", plugin.CodeBadOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			warm(t, h, 2)
			// Another caller keeps being served while the bad call runs.
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				out := h.FilterMessage(context.Background(), msg(tt.cmd, `{"text":"x"}`))
				if out.Action != plugin.Reject || out.ErrorCode != tt.code {
					t.Errorf("got %v %q (%s), want reject %q", out.Action, out.ErrorCode, out.Error, tt.code)
				}
				// Whatever the guest does, the call ends by its deadline.
				if d := time.Since(start); d > timeout+deadlineSlack {
					t.Errorf("the call took %v; the deadline is %v", d, timeout)
				}
			}()
			out := h.FilterMessage(context.Background(), msg("rewrite", `{"text":"ok"}`))
			if string(out.Body) != `{"text":"OK"}` {
				t.Errorf("concurrent good call: %+v", out)
			}
			wg.Wait()
			// The next calls work once the broken instance is replaced (in
			// the background: a call meanwhile may time out waiting).
			warm(t, h, 1)
			for range 3 {
				out := h.FilterMessage(context.Background(), msg("rewrite", `{"text":"ok"}`))
				if string(out.Body) != `{"text":"OK"}` {
					t.Fatalf("call after failure: %+v", out)
				}
			}
		})
	}
	select {
	case <-accepted:
		t.Error("the plugin opened a real socket to the host")
	default:
	}
	l := logs.String()
	for _, want := range []string{"plugin=chaos", "hook=filter-message", "deadline exceeded", "assignment to entry in nil map", "asked to fail"} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %q:\n%s", want, l)
		}
	}
}

// garbage is a hand-assembled plugin whose every hook answers something the
// ABI forbids: an unknown verdict (filter-message), an output outside memory
// (authorize-join), a truncated output record (on-token-create).
func garbage(t testing.TB) plugin.Spec {
	return plugin.Spec{Name: "garbage", Path: plugintest.RawModule(t, "garbage", []plugintest.RawFunc{
		{Name: "relay_abi_version", Result: 0x7f, Returns: 1},
		{Name: "relay_buffer", Params: 1, Result: 0x7f, Returns: 65536},
		{Name: "relay_filter_message", Params: 1, Result: 0x7e, Returns: 77 << 56},
		{Name: "relay_authorize_join", Params: 1, Result: 0x7e, Returns: 100<<32 | 0xFFFFFF00},
		{Name: "relay_on_token_create", Params: 1, Result: 0x7e, Returns: 7<<32 | 2048},
	}, map[uint32][]byte{2048: {34, 0, 100, 0, 0, 0, '{'}})}
}

func TestGarbageOutputIsABadOutput(t *testing.T) {
	// A long deadline: the second round waits for fresh instances.
	h, logs := load(t, plugin.Config{Plugins: []plugin.Spec{garbage(t)}, Timeout: 5 * time.Second})
	ctx := context.Background()
	for range 2 { // the second round runs on fresh instances
		if out := h.FilterMessage(ctx, msg("x", `{}`)); out.ErrorCode != plugin.CodeBadOutput {
			t.Fatalf("unknown verdict: %+v", out)
		}
		if out := h.AuthorizeJoin(ctx, &plugin.JoinRequest{Channel: "c", Protocol: "p", Builtin: plugin.JoinOutcome{Allowed: true}}); out.Allowed || out.ErrorCode != plugin.CodeBadOutput {
			t.Fatalf("output outside memory: %+v", out)
		}
		if out := h.OnTokenCreate(ctx, &plugin.TokenRequest{Channel: "c", Protocol: "p", Builtin: plugin.TokenOutcome{Allowed: true}}); out.Allowed || out.ErrorCode != plugin.CodeBadOutput {
			t.Fatalf("truncated record: %+v", out)
		}
	}
	for _, want := range []string{"unknown verdict 77", "outside memory", "malformed output record", "plugin=garbage"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
}

func TestFailOpenSkipsTheFailedPlugin(t *testing.T) {
	h, logs := load(t, plugin.Config{
		Plugins:  []plugin.Spec{chaos(t, "chaos", "")},
		Timeout:  50 * time.Millisecond,
		Policies: map[plugin.Hook]plugin.Policy{plugin.FilterMessage: plugin.FailOpen},
	})
	out := h.FilterMessage(context.Background(), msg("loop", `{"text":"x"}`))
	if out.Action != plugin.Deliver || string(out.Body) != `{"text":"x"}` {
		t.Fatalf("fail-open: %+v", out)
	}
	if !strings.Contains(logs.String(), "policy=open") {
		t.Errorf("no log line for the failure: %s", logs.String())
	}
}

func TestChainOrderAndFirstDenyWins(t *testing.T) {
	h, _ := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "first", `{"tag":"A"}`), chaos(t, "second", `{"tag":"B"}`)}})
	out := h.FilterMessage(context.Background(), msg("rewrite", `{"text":"x"}`))
	if string(out.Body) != `{"text":"X","trail":"AB"}` {
		t.Fatalf("chained rewrite: %s", out.Body)
	}
	j := h.AuthorizeJoin(context.Background(), &plugin.JoinRequest{Token: "echo", Channel: "c", Protocol: "p",
		Builtin: plugin.JoinOutcome{ErrorCode: "access_denied", Error: "no"}})
	// The second plugin sees the first one's allow.
	if !j.Allowed || !strings.Contains(string(j.Extra), `"allowed":true`) || !strings.Contains(string(j.Extra), `"tag":"B"`) {
		t.Fatalf("second plugin saw %s", j.Extra)
	}
	d := h.AuthorizeJoin(context.Background(), &plugin.JoinRequest{Token: "deny", Channel: "c", Protocol: "p",
		Builtin: plugin.JoinOutcome{Allowed: true, Mode: 2}})
	if d.Allowed || d.ErrorCode != "chaos_denied" {
		t.Fatalf("deny: %+v", d)
	}
}

func TestAuthorizeJoin(t *testing.T) {
	// A long deadline: the call after the panic waits for a new instance.
	h, _ := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", `{"tag":"t"}`)}, Timeout: 10 * time.Second})
	denied := plugin.JoinOutcome{ErrorCode: "access_denied", Error: "Access denied."}
	tests := []struct {
		name, token string
		builtin     plugin.JoinOutcome
		want        plugin.JoinOutcome
	}{
		{"no opinion keeps the built-in denial", "", denied, denied},
		{"no opinion keeps the built-in grant", "", plugin.JoinOutcome{Allowed: true, Mode: 1}, plugin.JoinOutcome{Allowed: true, Mode: 1}},
		{"allow overrides with mode and extra", "allow", denied, plugin.JoinOutcome{Allowed: true, Mode: 1, Extra: json.RawMessage(`{"by":"chaos","tag":"t"}`)}},
		{"authority gets mode 2", "auth", denied, plugin.JoinOutcome{Allowed: true, Authority: true, Mode: 2}},
		{"deny overrides a grant", "deny", plugin.JoinOutcome{Allowed: true, Authority: true, Mode: 2}, plugin.JoinOutcome{ErrorCode: "chaos_denied", Error: "chaos says no to room"}},
		{"panic fails closed", "panic", plugin.JoinOutcome{Allowed: true}, plugin.JoinOutcome{ErrorCode: plugin.CodeFailed, Error: "plugin failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h.AuthorizeJoin(context.Background(), &plugin.JoinRequest{ClientID: 3, Addr: "10.0.0.1", Origin: "https://app.example", Token: tt.token, Channel: "room", Protocol: "chat", Builtin: tt.builtin})
			if got.Allowed != tt.want.Allowed || got.Authority != tt.want.Authority || got.Mode != tt.want.Mode ||
				string(got.Extra) != string(tt.want.Extra) || got.ErrorCode != tt.want.ErrorCode || got.Error != tt.want.Error {
				t.Fatalf("got %+v (extra %s), want %+v", got, got.Extra, tt.want)
			}
		})
	}
	got := h.AuthorizeJoin(context.Background(), &plugin.JoinRequest{ClientID: 3, Addr: "10.0.0.1", Origin: "https://app.example", Token: "echo", Channel: "room", Protocol: "chat", Builtin: denied})
	if want := `{"addr":"10.0.0.1","allowed":false,"channel":"room","code":"access_denied","id":3,"origin":"https://app.example","protocol":"chat","tag":"t"}`; string(got.Extra) != want {
		t.Fatalf("join envelope %s, want %s", got.Extra, want)
	}
}

func TestOnTokenCreate(t *testing.T) {
	h, _ := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", `{"tag":"t"}`)}})
	base := plugin.TokenOutcome{Allowed: true, ClientMode: 1, MakeAuth: true, Lifetime: 30 * time.Second}
	req := func(extra string) *plugin.TokenRequest {
		b := base
		b.Extra = json.RawMessage(extra)
		return &plugin.TokenRequest{ClientID: 9, Addr: "127.0.0.1", Channel: "room", Protocol: "chat", Builtin: b}
	}
	got := h.OnTokenCreate(context.Background(), req(`{"do":"stamp"}`))
	if !got.Allowed || got.ClientMode != 2 || got.Lifetime != 5*time.Second || !got.MakeAuth ||
		string(got.Extra) != `{"do":"stamp","makeauth":true,"mode_was":1,"requester":9,"tag":"t"}` {
		t.Fatalf("stamp: %+v extra %s", got, got.Extra)
	}
	got = h.OnTokenCreate(context.Background(), req(`{"do":"deny"}`))
	if got.Allowed || got.ErrorCode != "chaos_denied" {
		t.Fatalf("deny: %+v", got)
	}
	got = h.OnTokenCreate(context.Background(), req(`{"x":1}`))
	if !got.Allowed || got.ClientMode != 1 || string(got.Extra) != `{"x":1}` || got.Lifetime != 30*time.Second {
		t.Fatalf("pass: %+v", got)
	}
}

func TestLoadFailuresStopStartUp(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.wasm")
	if err := os.WriteFile(junk, []byte("not wasm at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  plugin.Config
		want string
	}{
		{"missing file", plugin.Config{Plugins: []plugin.Spec{{Path: filepath.Join(dir, "nope.wasm")}}}, "plugin nope: open"},
		{"not a wasm module", plugin.Config{Plugins: []plugin.Spec{{Path: junk}}}, "plugin junk (" + junk + "): cannot compile"},
		{"wrong ABI version", plugin.Config{Plugins: []plugin.Spec{{Name: "badabi", Path: plugintest.RawModule(t, "badabi", []plugintest.RawFunc{
			{Name: "relay_abi_version", Result: 0x7f, Returns: 2},
			{Name: "relay_buffer", Params: 1, Result: 0x7f, Returns: 1024},
		}, nil)}}}, "built for plugin ABI version 2, this relay supports version 1"},
		{"not a relay plugin", plugin.Config{Plugins: []plugin.Spec{{Path: plugintest.RawModule(t, "bare", []plugintest.RawFunc{
			{Name: "hello", Result: 0x7f, Returns: 1},
		}, nil)}}}, "not a relay plugin: it does not export relay_abi_version"},
		{"memory cap below the module's needs", plugin.Config{MemoryLimitMB: 1, Plugins: []plugin.Spec{chaos(t, "chaos", "")}}, "over limit"},
		{"configuration rejected", plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", `{"reject":true}`)}}, "plugin rejected its configuration: configuration says reject"},
		{"configuration not JSON", plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", `{`)}}, "plugin chaos"},
		{"same name twice", plugin.Config{Plugins: []plugin.Spec{chaos(t, "x", ""), chaos(t, "x", "")}}, `plugin "x" is configured twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.CacheDir = plugintest.CacheDir(t)
			h, err := plugin.Load(context.Background(), tt.cfg, nil)
			if err == nil {
				h.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

func TestNoPluginsIsAPassThrough(t *testing.T) {
	var nilHost *plugin.Host
	for _, h := range []*plugin.Host{nilHost, func() *plugin.Host { h, _ := load(t, plugin.Config{}); return h }()} {
		if h.Enabled(plugin.FilterMessage) {
			t.Fatal("enabled without plugins")
		}
		out := h.FilterMessage(context.Background(), msg("x", `{"a":1}`))
		if out.Action != plugin.Deliver || string(out.Body) != `{"a":1}` {
			t.Fatalf("%+v", out)
		}
	}
}

func TestPluginOutputGoesToTheLog(t *testing.T) {
	h, logs := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "noisy", "")}})
	h.FilterMessage(context.Background(), msg("log", `{}`))
	l := logs.String()
	for _, want := range []string{
		`level=INFO msg="to stdout" stream=stdout plugin=noisy`,
		`level=WARN msg="to stderr" stream=stderr plugin=noisy`,
		`level=WARN msg="through the log import" plugin=noisy`,
	} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %s:\n%s", want, l)
		}
	}
}

// TestPoolHammer runs many goroutines through a small pool, mixing good calls
// with panics and deadline hits; every good call must get the right answer.
func TestPoolHammer(t *testing.T) {
	h, _ := load(t, plugin.Config{
		Plugins:   []plugin.Spec{chaos(t, "chaos", "")},
		Instances: 3,
		// Long enough for the instances the panics and loops cost to be
		// replaced (in the background) within a good call's deadline.
		Timeout: 2 * time.Second,
	})
	const workers, calls = 8, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range calls {
				switch {
				case w == 0 && i%10 == 5:
					if out := h.FilterMessage(context.Background(), msg("panic", `{}`)); out.ErrorCode != plugin.CodeFailed {
						t.Errorf("panic: %+v", out)
					}
				case w == 1 && i%20 == 7:
					if out := h.FilterMessage(context.Background(), msg("loop", `{}`)); out.ErrorCode != plugin.CodeTimeout {
						t.Errorf("loop: %+v", out)
					}
				default:
					text := strings.Repeat("a", i+w)
					out := h.FilterMessage(context.Background(), msg("rewrite", `{"text":"`+text+`"}`))
					if string(out.Body) != `{"text":"`+strings.ToUpper(text)+`"}` {
						t.Errorf("worker %d call %d: %+v", w, i, out)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestLargeMessagesGrowTheBuffer(t *testing.T) {
	h, _ := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", "")}, Timeout: 5 * time.Second, MaxBodyBytes: 1 << 20})
	text := strings.Repeat("x", 300<<10)
	out := h.FilterMessage(context.Background(), msg("rewrite", `{"text":"`+text+`"}`))
	if string(out.Body) != `{"text":"`+strings.ToUpper(text)+`"}` {
		t.Fatalf("large rewrite failed: %v %s", out.Action, out.Error)
	}
}

func TestObserveReportsEachCall(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	h, _ := load(t, plugin.Config{
		Plugins: []plugin.Spec{chaos(t, "chaos", "")},
		// The calls after loop and panic wait for a new instance.
		Timeout: 2 * time.Second,
		Observe: func(name string, hook plugin.Hook, outcome string, d time.Duration) {
			mu.Lock()
			defer mu.Unlock()
			if d <= 0 {
				t.Errorf("duration %v", d)
			}
			seen[name+" "+hook.String()+" "+outcome]++
		},
	})
	ctx := context.Background()
	for _, cmd := range []string{"pass", "drop", "deny", "loop", "panic", "badcode", "rewrite"} {
		h.FilterMessage(ctx, msg(cmd, `{"text":"x"}`))
	}
	h.AuthorizeJoin(ctx, &plugin.JoinRequest{Token: "allow", Builtin: plugin.JoinOutcome{}})
	want := map[string]int{
		"chaos filter-message continue": 2, "chaos filter-message drop": 1, "chaos filter-message deny": 1,
		"chaos filter-message timeout": 1, "chaos filter-message error": 1, "chaos filter-message bad_output": 1,
		"chaos authorize-join allow": 1,
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("observed %v, want %v", seen, want)
	}
}

// TestBuildMistakesStopStartUp covers the two mistakes a plugin author makes
// on a first plugin, with modules built from source the way the author did:
// each stops the start-up with a message naming the fix, instead of a wasm
// trap at the first call or a plugin that silently does nothing.
func TestBuildMistakesStopStartUp(t *testing.T) {
	tests := []struct {
		name    string
		path    func(t *testing.T) string
		want    []string
		notWant string
	}{
		{"built without -buildmode=c-shared", func(t *testing.T) string {
			return plugintest.BuildGoCommand(t, "relay/internal/plugin/testdata/guests", "./chaos")
		}, []string{"plugin chaos (", "exports _start, not _initialize", "go build -buildmode=c-shared"}, "unreachable"},
		{"handlers registered in main", func(t *testing.T) string {
			return plugintest.Guest(t, "mainhandlers")
		}, []string{"plugin mainhandlers (", "registers no hook", "from an init function, not from main"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := plugin.Config{Plugins: []plugin.Spec{{Path: tt.path(t)}}, CacheDir: plugintest.CacheDir(t)}
			h, err := plugin.Load(context.Background(), cfg, nil)
			if err == nil {
				h.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("error %q still says %q", err, tt.notWant)
			}
		})
	}
}

// TestRejectedConfigurationNamesItsVariable: the error a plugin's
// HandleConfigure returns reaches the operator with the variable the relay
// read, so a misspelt or missing RELAY_PLUGIN_CONFIG_<NAME> is found at once.
func TestRejectedConfigurationNamesItsVariable(t *testing.T) {
	guest := plugintest.BuildGo(t, "plugins", "./message-guard")
	dir := t.TempDir()
	path := filepath.Join(dir, "my-filter.wasm")
	b, err := os.ReadFile(guest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "filter.json")
	if err := os.WriteFile(file, []byte(`{"reject":true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, value string
		set         bool
		want        string
	}{
		{"set", `{"reject":true}`, true, "(configuration from RELAY_PLUGIN_CONFIG_MY_FILTER)"},
		{"read from a file", "@" + file, true, "(configuration read from " + file + ", named by RELAY_PLUGIN_CONFIG_MY_FILTER)"},
		{"empty", "", true, "(configuration from RELAY_PLUGIN_CONFIG_MY_FILTER, which is empty)"},
		{"not set", "", false, "(configuration from RELAY_PLUGIN_CONFIG_MY_FILTER, which is not set)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := plugin.SpecsFromEnv(path, func(name string) (string, bool) {
				if name != "RELAY_PLUGIN_CONFIG_MY_FILTER" || !tt.set {
					return "", false
				}
				return tt.value, true
			})
			if err != nil {
				t.Fatal(err)
			}
			h, err := plugin.Load(context.Background(), plugin.Config{Plugins: specs, CacheDir: plugintest.CacheDir(t)}, nil)
			if err == nil {
				h.Close(context.Background())
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), "plugin rejected its configuration") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// One .wasm file loaded under several names compiles several times at
// once; wazero must not hand an instance a half-loaded module (it panicked
// in moduleEngine.NewFunction when two compiles of the same bytes raced).
func TestSameModuleUnderSeveralNames(t *testing.T) {
	for range 10 {
		specs := []plugin.Spec{chaos(t, "a", ""), chaos(t, "b", ""), chaos(t, "c", ""), chaos(t, "d", "")}
		h, _ := load(t, plugin.Config{Plugins: specs})
		if got := h.Plugins(); len(got) != 4 {
			t.Fatalf("plugins %v", got)
		}
		h.Close(context.Background())
	}
}
