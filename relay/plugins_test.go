package relay_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
	"github.com/relay-project/relay/relay/internal/relaytest"
	"github.com/relay-project/relay/relay/protocol"
)

const jwtSecret = "an-application-secret-of-32-bytes-or-more"

func hsJWT(claims map[string]any) string {
	h, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT"})
	c, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	m := hmac.New(sha256.New, []byte(jwtSecret))
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// withPlugins configures the relay with plugins built from source.
func withPlugins(t *testing.T, cfg *relay.Config, plugins map[string]string, order ...string) {
	t.Helper()
	cfg.PluginCacheDir = plugintest.CacheDir(t)
	cfg.PluginConfigs = map[string]string{}
	for _, name := range order {
		var path string
		switch name {
		case "jwt-auth", "message-guard", "token-policy":
			path = plugintest.BuildGo(t, "plugins", "./"+name)
		default: // a copy of the chaos test guest under another name
			path = t.TempDir() + "/" + name + ".wasm"
			copyFile(t, plugintest.Guest(t, "chaos"), path)
		}
		cfg.Plugins = append(cfg.Plugins, path)
		cfg.PluginConfigs[name] = plugins[name]
	}
}

func TestPluginsEndToEnd(t *testing.T) {
	r := startRelay(t, func(cfg *relay.Config) {
		withPlugins(t, cfg, map[string]string{
			"jwt-auth":      `{"keys":[{"alg":"HS256","secret":"` + jwtSecret + `"}],"audience":"relay"}`,
			"message-guard": `{"protocols":{"chat":{"commands":["say"],"required":["text"],"redact":["card"]}}}`,
			"token-policy":  `{"protocols":["chat"],"issuer":"relay-e2e","max_lifetime_seconds":20}`,
		}, "jwt-auth", "message-guard", "token-policy")
	})
	t.Run("a browser joins with an application JWT, no GRANT", func(t *testing.T) {
		a := authority(t, r)
		join(t, a, "room", "chat", "")
		g := guest(t, r)
		tok := hsJWT(map[string]any{"aud": "relay", "exp": time.Now().Add(time.Minute).Unix(),
			"relay": map[string]any{"channels": []string{"room"}, "protocols": []string{"chat"}, "mode": 1, "extra": map[string]any{"name": "Ann"}}})
		m := join(t, g, "room", "chat", tok)
		if info := fmt.Sprint(m["info"]); info != "map[auth:false extra:map[name:Ann] mode:1]" {
			t.Fatalf("joined with %s", info)
		}
		a.NextMap() // JOINED notification

		expired := hsJWT(map[string]any{"aud": "relay", "exp": time.Now().Add(-time.Hour).Unix(),
			"relay": map[string]any{"channels": []string{"room"}, "protocols": []string{"chat"}}})
		g.Send(`{"cmd":"JOIN","channel":"room","protocol":"chat","token":"` + expired + `"}`)
		expectError(t, g, 0, "jwt_expired")
		g.Send(`{"cmd":"JOIN","channel":"other","protocol":"chat","token":"` + tok + `"}`)
		expectError(t, g, 0, "jwt_channel_not_allowed")
		// Another signature, spelled canonically (the last character's
		// unused bits zero; a non-canonical one is jwt_malformed).
		forged := tok[:len(tok)-2] + "AA"
		if forged == tok {
			forged = tok[:len(tok)-2] + "QA"
		}
		g.Send(`{"cmd":"JOIN","channel":"room","protocol":"chat","token":"` + forged + `"}`)
		expectError(t, g, 0, "jwt_bad_signature")
		// Without a token the built-in refusal stands.
		g.Send(`{"cmd":"JOIN","channel":"room2","protocol":"chat"}`)
		expectError(t, g, 0, "access_denied")
	})

	t.Run("grant tokens still work and token-policy stamps them", func(t *testing.T) {
		a := authority(t, r)
		tok := grant(t, a, "room3", "chat", 2, `{"user":"bob"}`, false)
		g := guest(t, r)
		m := join(t, g, "room3", "chat", tok)
		info, _ := m["info"].(map[string]any)
		extra, _ := info["extra"].(map[string]any)
		if extra["user"] != "bob" || extra["issuer"] != "relay-e2e" || extra["issued_at"] == nil {
			t.Fatalf("token extra %v", extra)
		}
		a.Send(`{"cmd":"GRANT","channel":"v","protocol":"video","clientmode":1,"extra":{}}`)
		expectError(t, a, 0, "policy_protocol_not_allowed")
	})

	t.Run("message-guard redacts and refuses", func(t *testing.T) {
		a := authority(t, r)
		g := guest(t, r)
		tok := grant(t, a, "guarded", "chat", 2, `{}`, false)
		ch := join(t, a, "guarded", "chat", "")["channel"]
		gm := join(t, g, "guarded", "chat", tok)
		a.NextMap()
		n := fmt.Sprint(gm["channel"])
		g.Send(`{"cmd":"say","channel":` + n + `,"to":-1,"text":"pay","card":"4111 1111"}`)
		want := `{"channel":` + n + `,"success":true,"from":` + id(gm) + `,"cmd":"say","text":"pay","card":"[redacted]"}`
		a.Expect(want)
		g.Expect(want)
		g.Send(`{"cmd":"shout","channel":` + n + `,"to":-1,"text":"x"}`)
		expectError(t, g, int(mustInt(t, ch)), "guard_command_not_allowed")
		g.Send(`{"cmd":"say","channel":` + n + `,"to":-1}`)
		expectError(t, g, int(mustInt(t, ch)), "guard_missing_field")
		a.ExpectNone(100 * time.Millisecond)
	})
}

func mustInt(t *testing.T, v any) int64 {
	t.Helper()
	var n int64
	if _, err := fmt.Sscan(fmt.Sprint(v), &n); err != nil {
		t.Fatalf("not a number: %v", v)
	}
	return n
}

func TestPluginChainOrderAndRewrite(t *testing.T) {
	r := startRelay(t, func(cfg *relay.Config) {
		withPlugins(t, cfg, map[string]string{"first": `{"tag":"A"}`, "second": `{"tag":"B"}`}, "first", "second")
	})
	a := authority(t, r)
	m := join(t, a, "c", "p", "")
	n := fmt.Sprint(m["channel"])
	a.Send(`{"cmd":"rewrite","channel":` + n + `,"to":-1,"text":"hi"}`)
	a.Expect(`{"channel":` + n + `,"success":true,"from":` + id(m) + `,"cmd":"rewrite","text":"HI","trail":"AB"}`)
	// A rewrite cannot forge the relay's fields or redirect the message.
	a.Send(`{"cmd":"forge","channel":` + n + `,"to":-1}`)
	a.Expect(`{"channel":` + n + `,"success":true,"from":` + id(m) + `,"cmd":"forge","text":"forged"}`)
	// The first deny wins; authorize-join sees the JOIN's token.
	g := guest(t, r)
	g.Send(`{"cmd":"JOIN","channel":"c","protocol":"p","token":"deny"}`)
	g.Expect(errFrame(0, "chaos_denied", "chaos says no to c"))
	// authorize-join may admit a client the relay would refuse.
	gm := join(t, g, "c", "p", "allow")
	if fmt.Sprint(gm["info"]) != "map[auth:false extra:map[by:chaos tag:B] mode:1]" {
		t.Fatalf("info %v", gm["info"])
	}
}

func TestMisbehavingPluginKeepsTheRelayServing(t *testing.T) {
	r := startRelay(t, func(cfg *relay.Config) {
		withPlugins(t, cfg, map[string]string{"chaos": ""}, "chaos")
		// Long enough for a failed instance's replacement (instantiated
		// in the background) to be up before the next message's deadline
		// on a loaded machine.
		cfg.PluginTimeout = 2 * time.Second
	})
	a := authority(t, r)
	m := join(t, a, "c", "p", "")
	n := fmt.Sprint(m["channel"])
	b := authority(t, r)
	bm := join(t, b, "c", "p", "")
	a.NextMap() // b joined
	for _, tt := range []struct{ cmd, code string }{
		{"loop", "plugin_timeout"}, {"panic", "plugin_error"}, {"oom", "plugin_error"}, {"badbody", "plugin_bad_output"},
	} {
		a.Send(`{"cmd":"` + tt.cmd + `","channel":` + n + `,"to":-1}`)
		// Another client is served while a's message is stuck in the plugin.
		b.Send(`{"cmd":"pass","channel":` + n + `,"to":-1,"i":1}`)
		want := `{"channel":` + n + `,"success":true,"from":` + id(bm) + `,"cmd":"pass","i":1}`
		b.Expect(want)
		// a gets b's message and its own error, in either order.
		f1, f2 := string(a.Next().Data), string(a.Next().Data)
		if f1 != want {
			f1, f2 = f2, f1
		}
		wantErr := `"errorcode":"` + tt.code + `"}`
		if f1 != want || !strings.HasPrefix(f2, `{"channel":`+n+`,"success":false,`) || !strings.HasSuffix(f2, wantErr) {
			t.Fatalf("%s: got %s and %s", tt.cmd, f1, f2)
		}
		// And the next message works.
		a.Send(`{"cmd":"pass","channel":` + n + `,"to":-1}`)
		a.Expect(`{"channel":` + n + `,"success":true,"from":` + id(m) + `,"cmd":"pass"}`)
		b.NextMap()
	}
	// Operators see every call in the metrics, by plugin, hook and outcome.
	_, body := httpGetAll(t, "http://"+r.Addr+"/metrics")
	for _, want := range []string{
		`relay_plugin_calls_total{hook="filter-message",outcome="timeout",plugin="chaos"} 1`,
		`relay_plugin_calls_total{hook="filter-message",outcome="error",plugin="chaos"} 2`,
		`relay_plugin_calls_total{hook="filter-message",outcome="bad_output",plugin="chaos"} 1`,
		`relay_plugin_calls_total{hook="filter-message",outcome="continue",plugin="chaos"} 8`,
		`relay_request_errors_total{errorcode="plugin_timeout",request="message"} 1`,
		`relay_plugin_call_seconds_count{hook="filter-message",plugin="chaos"} 12`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestPluginThatCannotLoadFailsNew(t *testing.T) {
	for _, tt := range []struct {
		name, want string
		mutate     func(*relay.Config)
	}{
		{"missing file", "relay: RELAY_PLUGINS: plugin nope: open", func(c *relay.Config) { c.Plugins = []string{t.TempDir() + "/nope.wasm"} }},
		{"bad configuration", "plugin jwt-auth", func(c *relay.Config) {
			withPlugins(t, c, map[string]string{"jwt-auth": `{"keys":[]}`}, "jwt-auth")
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := relaytest.Config(t)
			tt.mutate(&cfg)
			s, err := relay.New(cfg)
			if err == nil {
				s.Shutdown(t.Context())
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

func TestPluginConfigFromEnvironment(t *testing.T) {
	t.Setenv("RELAY_PLUGINS", "/x/jwt-auth.wasm, /y/message-guard.wasm")
	t.Setenv("RELAY_PLUGIN_CONFIG_JWT_AUTH", `{"keys":[]}`)
	t.Setenv("RELAY_PLUGIN_FAIL_FILTER_MESSAGE", "open")
	cfg, err := relay.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PluginConfigs["jwt-auth"] != `{"keys":[]}` || len(cfg.PluginConfigs) != 1 || cfg.PluginFailFilterMessage != "open" {
		t.Fatalf("config %+v", cfg)
	}
	t.Setenv("RELAY_PLUGIN_FAIL_ON_TOKEN_CREATE", "maybe")
	if _, err := relay.LoadConfig(); err == nil || !strings.Contains(err.Error(), "RELAY_PLUGIN_FAIL_ON_TOKEN_CREATE=maybe: want closed or open") {
		t.Fatalf("bad policy: %v", err)
	}
}

func TestPluginErrorCodesAreInTheProtocolTable(t *testing.T) {
	for _, c := range []struct {
		host  string
		proto protocol.Code
	}{
		{plugin.CodeFailed, protocol.CodePluginError},
		{plugin.CodeTimeout, protocol.CodePluginTimeout},
		{plugin.CodeBadOutput, protocol.CodePluginBadOutput},
		{plugin.CodeDenied, protocol.CodePluginDenied},
	} {
		if c.host != string(c.proto) {
			t.Errorf("plugin host code %q, protocol table %q", c.host, c.proto)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPrecompilePlugins(t *testing.T) {
	cache := t.TempDir()
	wasm := plugintest.BuildGo(t, "plugins", "./message-guard")
	if err := relay.PrecompilePlugins(t.Context(), cache, wasm); err != nil {
		t.Fatal(err)
	}
	entries := func() int {
		files, _ := filepath.Glob(filepath.Join(cache, "*", "*"))
		return len(files)
	}
	if entries() != 1 {
		t.Fatalf("cache holds %d entries after precompiling one plugin", entries())
	}
	// A relay using the cache loads the precompiled code: it adds nothing.
	cfg := relaytest.Config(t)
	cfg.Plugins = []string{wasm}
	cfg.PluginCacheDir = cache
	cfg.PluginConfigs = map[string]string{"message-guard": `{"protocols":{"*":{"max_body_bytes":10}}}`}
	relaytest.Start(t, cfg, "")
	if entries() != 1 {
		t.Fatalf("cache holds %d entries after a start: the relay compiled again", entries())
	}
	if err := relay.PrecompilePlugins(t.Context(), cache, t.TempDir()+"/missing.wasm"); err == nil {
		t.Fatal("precompiling a missing file succeeded")
	}
}

// The HTTP API goes through the same hooks as GRANT and messages: a
// backend cannot mint or publish around a policy the operator installed.
func TestHTTPAPIRunsHooks(t *testing.T) {
	r := startRelay(t, func(cfg *relay.Config) {
		withPlugins(t, cfg, map[string]string{"chaos": `{"tag":"T"}`}, "chaos")
		// Long enough for the instance a loop costs to be replaced (in the
		// background) before the next request's deadline under -race.
		cfg.PluginTimeout = 2 * time.Second
	})
	backend := newAPI(t, r, authAddr, "")

	// on-token-create changes mode, extra and lifetime; the answer says so.
	st, tok := backend.post("/v1/tokens", map[string]any{"channel": "h", "protocol": "p", "clientmode": 0, "extra": map[string]any{"do": "stamp"}})
	wantStatus(t, st, tok, http.StatusCreated, "")
	if fmt.Sprint(tok["clientmode"]) != "2" || fmt.Sprint(tok["lifetime"]) != "5" {
		t.Fatalf("token %v", tok)
	}
	g := guest(t, r)
	joined := join(t, g, "h", "p", tok["token"].(string))
	if got := fmt.Sprint(joined["info"]); got != "map[auth:false extra:map[do:stamp makeauth:false mode_was:0 requester:0 tag:T] mode:2]" {
		t.Fatalf("joined with %s", got)
	}
	ch := fmt.Sprint(joined["channel"])
	g.Send(`{"cmd":"LEAVE","channel":999}`) // answered once the JOIN (and its replay) is done
	expectError(t, g, 0, "invalid_channel")

	// A plugin's refusal is a 403 with its code; a failed plugin a 503.
	st, m := backend.post("/v1/tokens", map[string]any{"channel": "h", "protocol": "p", "extra": map[string]any{"do": "deny"}})
	wantStatus(t, st, m, http.StatusForbidden, "chaos_denied")
	st, m = backend.post("/v1/tokens", map[string]any{"channel": "h", "protocol": "p", "extra": map[string]any{"do": "loop"}})
	wantStatus(t, st, m, http.StatusServiceUnavailable, "plugin_timeout")

	// filter-message sees a message from 0, an authority, and may rewrite
	// it; what is retained is the rewrite.
	publish := func(cmd string, fields map[string]any, retain int) (int, map[string]any) {
		return backend.post("/v1/publish", map[string]any{"channel": "h", "protocol": "p", "cmd": cmd, "fields": fields, "retain": retain})
	}
	st, m = publish("echo", map[string]any{"x": 1}, 0)
	wantStatus(t, st, m, http.StatusOK, "")
	g.Expect(`{"channel":` + ch + `,"success":true,"from":0,"cmd":"echo","protocol":"p","channel_id":` + ch + `,"sender":0,"authority":true,"mode":2,"extra":null,"body":{"x":1},"fields":1,"now_ok":true}`)
	st, m = publish("rewrite", map[string]any{"text": "ready"}, 60)
	wantStatus(t, st, m, http.StatusOK, "")
	g.Expect(`{"channel":` + ch + `,"success":true,"from":0,"cmd":"rewrite","text":"READY","trail":"T"}`)
	// A rewrite cannot forge the fields the relay sets.
	st, m = publish("forge", nil, 0)
	wantStatus(t, st, m, http.StatusOK, "")
	g.Expect(`{"channel":` + ch + `,"success":true,"from":0,"cmd":"forge","text":"forged"}`)
	late := guest(t, r)
	join(t, late, "h", "p", "allow")
	late.Expect(`{"channel":` + ch + `,"success":true,"from":0,"cmd":"rewrite","text":"READY","trail":"T","replayed":true}`)
	g.NextMap() // late's JOINED

	// A dropped message reaches no one and is not retained; a denied or
	// failed one is an error for the caller.
	st, m = publish("drop", nil, 60)
	wantStatus(t, st, m, http.StatusOK, "")
	if fmt.Sprint(m["delivered"]) != "0" || m["retained"] != false || fmt.Sprint(m["channel"]) != ch || m["dropped"] != true {
		t.Fatalf("dropped publish %v, want dropped true", m)
	}
	// The embedding API says the same.
	if res, err := r.Publish(context.Background(), relay.Message{Channel: "h", Protocol: "p", Cmd: "drop"}); err != nil || !res.Dropped || res.Delivered != 0 {
		t.Fatalf("Server.Publish of a dropped message: %+v, %v", res, err)
	}
	if res, err := r.Publish(context.Background(), relay.Message{Channel: "h", Protocol: "p", Cmd: "pass"}); err != nil || res.Dropped || res.Delivered != 2 {
		t.Fatalf("Server.Publish of a passed message: %+v, %v", res, err)
	}
	g.NextMap() // the passed message
	late.NextMap()
	st, m = publish("deny", nil, 0)
	wantStatus(t, st, m, http.StatusForbidden, "chaos_denied")
	st, m = publish("loop", nil, 0)
	wantStatus(t, st, m, http.StatusServiceUnavailable, "plugin_timeout")
	st, m = publish("badbody", nil, 0)
	wantStatus(t, st, m, http.StatusServiceUnavailable, "plugin_bad_output")
	g.ExpectNone(100 * time.Millisecond)
	late.ExpectNone(0)
}

// TestRefusedRepeatedJoinKeepsTheToken: a member that sends JOIN again with
// the grant token it holds, refused by authorize-join, stays a member and
// keeps the token: nobody else can join with it meanwhile (a refusal used
// to re-arm it for anyone while its member stayed joined), and it is
// re-armed when the member leaves, with the member's state then.
func TestRefusedRepeatedJoinKeepsTheToken(t *testing.T) {
	r := startRelay(t, func(cfg *relay.Config) {
		withPlugins(t, cfg, map[string]string{"chaos": ""}, "chaos")
	})
	a := authority(t, r)
	n := fmt.Sprint(join(t, a, "room", "chat", "")["channel"])
	tok := grant(t, a, "room", "chat", 1, `{"n":1}`, false)
	g := guest(t, r)
	gid := id(join(t, g, "room", "chat", tok))
	a.NextMap() // JOINED
	setExtra := func(extra string) {
		a.Send(fmt.Sprintf(`{"cmd":"SET_EXTRA","channel":%s,"id":%s,"extra":%s}`, n, gid, extra))
		a.NextMap()
	}
	setExtra(`{"chaos":"deny"}`) // the chaos plugin refuses a member with this extra

	g.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"room","protocol":"chat","token":%q}`, tok))
	expectError(t, g, 0, "chaos_denied")
	other := guest(t, r)
	other.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"room","protocol":"chat","token":%q}`, tok))
	expectError(t, other, 0, "access_denied")
	if ms := r.Members("room", "chat"); len(ms) != 2 {
		t.Fatalf("after the refused repeated JOIN the channel has %d members, want 2 (the authority and the guest)", len(ms))
	}

	setExtra(`{"n":2}`)
	g.Conn().Close(websocket.StatusGoingAway, "blip")
	a.NextMap() // LEFT
	req := fmt.Sprintf(`{"cmd":"JOIN","channel":"room","protocol":"chat","token":%q}`, tok)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		other.Send(req)
		m := other.NextMap()
		if m["cmd"] == "JOINED" {
			if got := fmt.Sprint(m["info"]); got != "map[auth:false extra:map[n:2] mode:1]" {
				t.Fatalf("joined with the released token as %s, want the member's state at its leave", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the token was not re-armed when its member left: %v", m)
		}
	}
}
