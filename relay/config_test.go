package relay_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

func TestDefaults(t *testing.T) {
	cfg := relay.DefaultConfig()
	if cfg.Port != 7328 || cfg.TokenTTL != 30*time.Second || cfg.MaxChannelsPerClient != 256 ||
		cfg.MaxMessageBytes != 64<<10 || cfg.ShutdownTimeout >= 10*time.Second {
		t.Fatalf("defaults: %+v", cfg)
	}
	if strings.Join(cfg.AuthorityIPs, ",") != "127.0.0.0/8,::1" {
		t.Fatalf("loopback is not the default authority: %v", cfg.AuthorityIPs)
	}
}

func TestBadValueNamesTheVariable(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"RELAY_PING_INTERVAL", "soon", "RELAY_PING_INTERVAL=\"soon\": want a duration"},
		{"PORT", "http", "PORT=\"http\": want a whole number"},
		{"RELAY_REQUIRE_ORIGIN", "maybe", "RELAY_REQUIRE_ORIGIN=\"maybe\": want true or false"},
		{"RELAY_TOKEN_TTL", "-1s", "RELAY_TOKEN_TTL=-1s: want a positive duration"},
		{"RELAY_LOG_LEVEL", "loud", "RELAY_LOG_LEVEL=loud: want debug, info, warn or error"},
		{"RELAY_MAX_MESSAGE_BYTES", "10", "RELAY_MAX_MESSAGE_BYTES=10: want at least 64"},
		{"RELAY_MESSAGE_TIMEOUT", "0s", "RELAY_MESSAGE_TIMEOUT=0s: want a positive duration"},
		{"RELAY_UNFINISHED_BYTES", "1000", "RELAY_UNFINISHED_BYTES=1000: want at least RELAY_MAX_MESSAGE_BYTES (65536)"},
		{"RELAY_JOIN_TIMEOUT", "-1s", "RELAY_JOIN_TIMEOUT=-1s: want 0 (off) or a positive duration"},
		{"RELAY_CLIENT_RATE", "-5", "RELAY_CLIENT_RATE=-5: want 0 (off) or a number of messages per second"},
		{"RELAY_CLIENT_BURST", "0", "RELAY_CLIENT_BURST=0: want at least 1"},
		{"RELAY_HTTP_IDLE_TIMEOUT", "0s", "RELAY_HTTP_IDLE_TIMEOUT=0s: want a positive duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			_, err := relay.LoadConfig()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want it to say %q", err, tc.want)
			}
		})
	}
}

func TestBadListsFailNew(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*relay.Config)
		want   string
	}{
		{func(c *relay.Config) { c.AuthorityIPs = []string{"localhost"} }, "RELAY_AUTHORITY_IPS"},
		{func(c *relay.Config) { c.TrustedProxies = []string{"10.0.0.0/33"} }, "RELAY_TRUSTED_PROXIES"},
		{func(c *relay.Config) { c.Origins = []string{"example.com"} }, "RELAY_ORIGINS"},
		{func(c *relay.Config) { c.AuthorityTokensFile = "/nonexistent/tokens" }, "RELAY_AUTHORITY_TOKENS_FILE"},
	} {
		cfg := relay.DefaultConfig()
		tc.mutate(&cfg)
		if _, err := relay.New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: %v, want an error naming %s", err, tc.want)
		}
	}
}

func TestTokensFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte("from-file-1\nfrom-file-2#chat\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RELAY_AUTHORITY_TOKENS_FILE", path)
	t.Setenv("RELAY_AUTHORITY_IPS", "none")
	cfg, err := relay.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	base := cfg
	r := startRelay(t, func(c *relay.Config) {
		c.AuthorityIPs = nil
		c.AuthorityTokensFile = base.AuthorityTokensFile
	})
	if !isAuthorityWithToken(t, r, "from-file-2", "chat") || isAuthorityWithToken(t, r, "from-file-2", "ops") || !isAuthorityWithToken(t, r, "from-file-1", "ops") {
		t.Fatal("tokens from RELAY_AUTHORITY_TOKENS_FILE not honoured")
	}
}

func isAuthorityWithToken(t *testing.T, r *relaytest.Relay, tok, proto string) bool {
	t.Helper()
	c := guest(t, r)
	c.Send(`{"cmd":"JOIN","channel":"c","protocol":"` + proto + `","token":"` + tok + `"}`)
	return c.NextMap()["cmd"] == "JOINED"
}

func TestEveryVariableIsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatalf("README: %v", err)
	}
	for _, v := range relay.EnvVars() {
		if v.Help == "" {
			t.Errorf("%s has no help text", v.Name)
		}
		row := "| `" + v.Name + "` |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("README's environment table has no row for %s", v.Name)
		}
		if v.Default != "" && !strings.Contains(string(readme), row+" `"+v.Default+"` |") {
			t.Errorf("README's row for %s does not give its default %q", v.Name, v.Default)
		}
	}
}
