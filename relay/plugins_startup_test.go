package relay_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// captureLog sends cfg's log to the returned buffer.
func captureLog(cfg *relay.Config) *relaytest.LogBuffer {
	logs := &relaytest.LogBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return logs
}

// logLine returns the first line of logs containing msg.
func logLine(logs, msg string) string {
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, msg) {
			return l
		}
	}
	return ""
}

// The start-up log says what each plugin does, so a plugin that loads
// but does less than its author meant is seen in the first line.
func TestPluginsLoadedLogListsHooks(t *testing.T) {
	var logs *relaytest.LogBuffer
	startRelay(t, func(cfg *relay.Config) {
		withPlugins(t, cfg, map[string]string{
			"message-guard": `{"protocols":{"chat":{"commands":["say"]}}}`,
			"chaos":         "",
		}, "message-guard", "chaos")
		logs = captureLog(cfg)
	})
	line := logLine(logs.String(), `msg="plugins loaded"`)
	want := "plugins.message-guard=filter-message plugins.chaos=authorize-join,filter-message,on-token-create"
	if !strings.Contains(line, want) {
		t.Fatalf("start-up log line %q lacks %q\nlog:\n%s", line, want, logs)
	}
}

// unwritableDir makes dir refuse writes: a read-only bind mount of itself
// when running as root (which file modes do not stop), its mode otherwise.
func unwritableDir(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	} else {
		if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
			plugintest.SkipOrFail(t, "cannot bind-mount %s read-only as root (needs CAP_SYS_ADMIN): %v", dir, err)
		}
		t.Cleanup(func() { syscall.Unmount(dir, 0) })
		if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			plugintest.SkipOrFail(t, "cannot remount %s read-only: %v", dir, err)
		}
	}
	if f, err := os.CreateTemp(dir, "probe"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Fatalf("%s is still writable", dir)
	}
}

// A compilation cache the relay cannot write (a read-only root file system
// on Kubernetes) costs start-up time, never the start: the relay warns,
// compiles in memory and serves, and plugins already in a read-only cache
// still load from it.
func TestUnwritablePluginCacheStillServes(t *testing.T) {
	guard := plugintest.BuildGo(t, "plugins", "./message-guard")
	chaos := plugintest.Guest(t, "chaos")
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		// cache returns the cache directory.
		cache func(t *testing.T) string
		// warn is the warning expected; noWarn a plugin that must not be
		// named in one (it loaded from the cache).
		warn, noWarn string
	}{
		{"cache directory cannot be created", func(t *testing.T) string {
			return filepath.Join(notDir, "cache") // its parent is a regular file
		}, `msg="plugin compilation cache unavailable: plugins are compiled in memory at every start"`, ""},
		{"read-only cache holding one of the plugins", func(t *testing.T) string {
			dir := t.TempDir()
			if err := relay.PrecompilePlugins(t.Context(), dir, guard); err != nil {
				t.Fatal(err)
			}
			unwritableDir(t, dir)
			unwritableDir(t, mustGlob(t, filepath.Join(dir, "*")))
			return dir
		}, `msg="plugin compilation cache cannot be written: plugin compiled in memory`, "plugin=message-guard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs *relaytest.LogBuffer
			dir := tt.cache(t)
			r := startRelay(t, func(cfg *relay.Config) {
				withPlugins(t, cfg, map[string]string{
					"message-guard": `{"protocols":{"chat":{"commands":["say"]}}}`,
					"chaos":         "",
				}, "message-guard", "chaos")
				copyFile(t, chaos, cfg.Plugins[1])
				cfg.PluginCacheDir = dir
				logs = captureLog(cfg)
			})
			line := logLine(logs.String(), tt.warn)
			if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "dir="+dir) {
				t.Fatalf("no warning %s naming %s in the log:\n%s", tt.warn, dir, logs)
			}
			if tt.noWarn != "" {
				for _, l := range strings.Split(logs.String(), "\n") {
					if strings.Contains(l, "level=WARN") && strings.Contains(l, tt.noWarn) {
						t.Errorf("a precompiled plugin was compiled again: %s", l)
					}
				}
			}
			// Both plugins run: message-guard refuses a command, chaos
			// (after it) denies a JOIN whose token says so.
			a := authority(t, r)
			ch := join(t, a, "room", "chat", "")["channel"]
			a.Send(`{"cmd":"shout","channel":` + fmt.Sprint(ch) + `,"to":-1}`)
			expectError(t, a, int(mustInt(t, ch)), "guard_command_not_allowed")
			g := guest(t, r)
			g.Send(`{"cmd":"JOIN","channel":"room","protocol":"chat","token":"deny"}`)
			expectError(t, g, 0, "chaos_denied")
		})
	}
}

func mustGlob(t *testing.T, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) != 1 {
		t.Fatalf("glob %s: %v %v", pattern, m, err)
	}
	return m[0]
}

// A first-party plugin started without its configuration stops the relay
// with an error naming the variable to set, read from the environment as
// the relay binary does.
func TestMissingPluginConfigurationNamesTheVariable(t *testing.T) {
	t.Setenv("RELAY_PLUGINS", plugintest.BuildGo(t, "plugins", "./message-guard"))
	t.Setenv("RELAY_PLUGIN_CACHE_DIR", plugintest.CacheDir(t))
	cfg, err := relay.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger = relaytest.Config(t).Logger
	srv, err := relay.New(cfg)
	if err == nil {
		srv.Shutdown(t.Context())
		t.Fatal("relay.New succeeded without the plugin's configuration")
	}
	for _, want := range []string{"message-guard configuration is required", "(configuration from RELAY_PLUGIN_CONFIG_MESSAGE_GUARD, which is not set)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
