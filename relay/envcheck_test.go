package relay_test

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
)

// TestUnknownVariablesAreReported: LoadConfig names every RELAY_* variable
// it does not read, with the one most likely meant, and every plugin
// configuration that matches no plugin in RELAY_PLUGINS; New logs each once.
func TestUnknownVariablesAreReported(t *testing.T) {
	// Only this test's variables: CI sets RELAY_TEST_STRICT and others.
	for _, kv := range os.Environ() {
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(strings.ToUpper(k), "RELAY_") {
			t.Setenv(k, v) // restored when the test ends
			os.Unsetenv(k)
		}
	}
	for k, v := range map[string]string{
		"RELAY_PLUGINS":                   "/plugins/jwt-auth.wasm",
		"RELAY_PLUGIN_CONFIG_JWT_AUTH":    `{"ok":1}`, // read: no warning
		"RELAY_PLUGIN_CONFIG_JWT":         `{}`,
		"RELAY_PLUGIN_RESOURCES_JWT_AUTH": "https://idp.example/jwks.json", // read: no warning
		"RELAY_PLUGIN_RESOURCES_JWTAUTH":  "https://idp.example/jwks.json",
		"RELAY_ORIGIN":                    "https://app.example",
		"RELAY_LOGLEVEL":                  "debug",
		"RELAY_METRICS":                   ":9090",
		"RELAY_ZZZZZZZZZZZZZZZZ":          "1",
		"RELAY_MAX_CHANNELS_PER_CLIENT":   "10", // read: no warning
	} {
		t.Setenv(k, v)
	}
	cfg, err := relay.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // variable: the one it likely meant
		"RELAY_LOGLEVEL":                 "RELAY_LOG_LEVEL",
		"RELAY_METRICS":                  "RELAY_METRICS_ADDR",
		"RELAY_ORIGIN":                   "RELAY_ORIGINS",
		"RELAY_PLUGIN_CONFIG_JWT":        "RELAY_PLUGIN_CONFIG_JWT_AUTH",
		"RELAY_PLUGIN_RESOURCES_JWTAUTH": "RELAY_PLUGIN_RESOURCES_JWT_AUTH",
		"RELAY_ZZZZZZZZZZZZZZZZ":         "",
	}
	got := map[string]string{}
	for _, w := range cfg.EnvWarnings {
		got[w.Name] = w.Closest
		if w.Problem == "" {
			t.Errorf("%s: no problem stated", w.Name)
		}
	}
	for name, closest := range want {
		if c, ok := got[name]; !ok || c != closest {
			t.Errorf("%s: warned=%v closest %q, want closest %q", name, ok, c, closest)
		}
	}
	if len(got) != len(want) {
		t.Errorf("warnings for %v, want exactly %v", got, want)
	}
	if cfg.PluginConfigs["jwt-auth"] != `{"ok":1}` {
		t.Errorf("the plugin's configuration was not read: %v", cfg.PluginConfigs)
	}

	// New logs each once, at warn level (the plugin file does not exist:
	// New fails after logging, which is what a misconfigured start sees).
	var logs bytes.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	relay.New(cfg)
	for name := range want {
		if n := strings.Count(logs.String(), "level=WARN msg=\"environment variable ignored: "+name+" "); n != 1 {
			t.Errorf("%s logged %d times, want once:\n%s", name, n, logs.String())
		}
	}
}

// TestJSONLogWritesDurationsAsText: the JSON log writes a duration as the
// variables and the text log do ("8s"), not as nanoseconds.
func TestJSONLogWritesDurationsAsText(t *testing.T) {
	cfg := relay.DefaultConfig()
	var buf bytes.Buffer
	cfg.NewLogger(&buf).Info("x", "deadline", 8*time.Second, slog.Group("g", "took", 1500*time.Millisecond))
	if !strings.Contains(buf.String(), `"deadline":"8s","g":{"took":"1.5s"}`) {
		t.Fatalf("JSON log: %s", buf.String())
	}
}
