package relay

import (
	"slices"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay/internal/plugin"
)

// FuzzLoadConfig feeds arbitrary environments (lines of NAME=VALUE) to the
// configuration parser. Whatever it is given it must not panic; it either
// refuses with an error that says the configuration is bad, or returns a
// configuration that validates, whose warnings name only RELAY_* variables
// that were set and it does not read, each suggesting a variable it does
// read (or none), in name order.
func FuzzLoadConfig(f *testing.F) {
	f.Add("RELAY_ORIGIN=https://a.example\nRELAY_PLUGIN=x.wasm")
	f.Add("RELAY_TOKEN_TTL=-1s")
	f.Fuzz(func(t *testing.T, text string) {
		environ := map[string]string{}
		for _, line := range strings.Split(text, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && k != "" {
				environ[k] = v
			}
		}
		cfg, err := loadConfig(environ)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "relay: bad configuration: ") {
				t.Fatalf("error %q does not say the configuration is bad", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("loaded a configuration that does not validate: %v", err)
		}
		known := map[string]bool{}
		for _, v := range EnvVars() {
			known[v.Name] = true
		}
		for _, p := range cfg.Plugins {
			known[plugin.ConfigEnvName(plugin.PluginName(strings.TrimSpace(p)))] = true
		}
		if !slices.IsSortedFunc(cfg.EnvWarnings, func(a, b EnvWarning) int { return strings.Compare(a.Name, b.Name) }) {
			t.Fatalf("warnings out of order: %v", cfg.EnvWarnings)
		}
		for _, w := range cfg.EnvWarnings {
			if _, set := environ[w.Name]; !set || !strings.HasPrefix(strings.ToUpper(w.Name), envPrefix) || known[w.Name] {
				t.Fatalf("warning about %q: not a set, unread RELAY_* variable", w.Name)
			}
			if w.Closest != "" && !known[w.Closest] {
				t.Fatalf("%s: suggests %q, which the relay does not read", w.Name, w.Closest)
			}
		}
	})
}
