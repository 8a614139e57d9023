package plugin

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Defaults for zero Config fields.
const (
	// DefaultTimeout bounds one hook call.
	DefaultTimeout = 100 * time.Millisecond
	// DefaultMemoryLimitMB caps one instance's linear memory.
	DefaultMemoryLimitMB = 32
	// DefaultInitTimeout bounds instantiating and configuring an instance.
	DefaultInitTimeout = 10 * time.Second
	// DefaultLogLines is the log lines per second and plugin, with a burst
	// of 5 seconds' worth.
	DefaultLogLines = 20
	// DefaultMaxTokenBytes is the longest JOIN token authorize-join sees.
	DefaultMaxTokenBytes = 8192
	// DefaultMaxBodyBytes bounds a filter-message rewrite.
	DefaultMaxBodyBytes = 65536
	// DefaultMaxExtraBytes bounds an extra a plugin sets.
	DefaultMaxExtraBytes = 4096
	// DefaultMaxLifetime bounds a token lifetime on-token-create sets.
	DefaultMaxLifetime = time.Hour
)

// CacheDirOff as Config.CacheDir disables the on-disk compilation cache.
const CacheDirOff = "off"

// Spec names one plugin to load.
type Spec struct {
	// Name tags the plugin in logs; empty means the file name without ".wasm".
	Name string
	// Path is the .wasm file.
	Path string
	// Config is handed to the plugin's relay_configure export once per instance.
	Config []byte
	// ConfigVar is the environment variable Config was read from, named
	// when the plugin rejects its configuration; empty when the program
	// embedding the relay set Config itself.
	ConfigVar string
	// ConfigFile is the file Config was read from (ConfigVar=@FILE).
	ConfigFile string
	// Resources are the URLs the plugin may read through relay.resource
	// (RELAY_PLUGIN_RESOURCES_<NAME>); the host fetches and refreshes them.
	Resources []string
}

// configOrigin says where s's configuration came from, for the error a
// plugin rejecting it stops start-up with.
func (s Spec) configOrigin() string {
	switch {
	case s.ConfigVar == "":
		return fmt.Sprintf("configuration of %d bytes set by the program", len(s.Config))
	case s.ConfigFile != "":
		return fmt.Sprintf("configuration read from %s, named by %s", s.ConfigFile, s.ConfigVar)
	case s.Config == nil:
		return "configuration from " + s.ConfigVar + ", which is not set"
	case len(s.Config) == 0:
		return "configuration from " + s.ConfigVar + ", which is empty"
	}
	return "configuration from " + s.ConfigVar
}

// Policy is what a hook does when a plugin fails (trap, deadline, bad output).
type Policy int

const (
	// FailClosed refuses the request with the failure's errorcode (default).
	FailClosed Policy = iota
	// FailOpen skips the failed plugin; the chain goes on without it.
	FailOpen
)

// String returns "closed" or "open".
func (p Policy) String() string {
	if p == FailOpen {
		return "open"
	}
	return "closed"
}

// ParsePolicy parses "closed" or "open" (any case; "" is closed).
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "closed":
		return FailClosed, nil
	case "open":
		return FailOpen, nil
	}
	return FailClosed, fmt.Errorf("failure policy %q: want closed or open", s)
}

// Config configures a Host. The zero value of each field means its default.
type Config struct {
	// Plugins run in this order for every hook they implement.
	Plugins []Spec
	// Timeout bounds one call into a plugin; a guest still running then is
	// stopped and its instance discarded. Default DefaultTimeout.
	Timeout time.Duration
	// InitTimeout bounds instantiating a module (its _initialize and
	// relay_configure). Default DefaultInitTimeout.
	InitTimeout time.Duration
	// MemoryLimitMB caps each instance's linear memory. Default DefaultMemoryLimitMB.
	MemoryLimitMB int
	// Instances caps the pooled instances per plugin. Default GOMAXPROCS.
	Instances int
	// CacheDir keeps compiled code between starts. Default
	// os.UserCacheDir()/relay/plugins (or the temp dir); CacheDirOff disables it.
	CacheDir string
	// Policies sets each hook's failure policy; missing hooks are FailClosed.
	Policies map[Hook]Policy
	// Observe, when set, is called after every hook call with the plugin's
	// name, the hook, the outcome (one of the Outcome constants) and the
	// call's duration; the relay feeds its metrics with it. It must be fast
	// and safe for concurrent use.
	Observe func(plugin string, hook Hook, outcome string, d time.Duration)
	// LogLinesPerSecond bounds each plugin's log output (stdout, stderr and
	// the log import). Default DefaultLogLines.
	LogLinesPerSecond int
	// MaxTokenBytes is the longest JOIN token authorize-join plugins are
	// given; a longer one is refused with CodeTokenTooLarge before any
	// plugin runs. Default DefaultMaxTokenBytes.
	MaxTokenBytes int
	// MaxBodyBytes bounds a body rewritten by filter-message (the relay's
	// message size limit); a larger rewrite is a bad output. Default
	// DefaultMaxBodyBytes.
	MaxBodyBytes int
	// MaxExtraBytes bounds an extra set by authorize-join or
	// on-token-create; a larger one is a bad output. Default
	// DefaultMaxExtraBytes.
	MaxExtraBytes int
	// MaxLifetime is the longest token lifetime on-token-create may set; a
	// longer one is cut to it. Default DefaultMaxLifetime.
	MaxLifetime time.Duration
	// Resources configures fetching the plugins' resources (resources.go).
	Resources ResourceConfig
}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.InitTimeout <= 0 {
		c.InitTimeout = DefaultInitTimeout
	}
	if c.MemoryLimitMB <= 0 {
		c.MemoryLimitMB = DefaultMemoryLimitMB
	}
	if c.Instances <= 0 {
		c.Instances = runtime.GOMAXPROCS(0)
	}
	if c.LogLinesPerSecond <= 0 {
		c.LogLinesPerSecond = DefaultLogLines
	}
	if c.CacheDir == "" {
		c.CacheDir = DefaultCacheDir()
	}
	if c.MaxTokenBytes <= 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxExtraBytes <= 0 {
		c.MaxExtraBytes = DefaultMaxExtraBytes
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	return c
}

// DefaultCacheDir returns the compilation cache directory used when
// Config.CacheDir is empty.
func DefaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "relay", "plugins")
	}
	return filepath.Join(os.TempDir(), "relay-plugins-cache")
}

// PluginName returns the name a plugin file gets when Spec.Name is empty:
// its base name without ".wasm".
func PluginName(path string) string {
	return strings.TrimSuffix(filepath.Base(path), ".wasm")
}

// ConfigEnvName returns the environment variable that holds the
// configuration of the plugin called name: RELAY_PLUGIN_CONFIG_ followed by
// the name in upper case with every other character than A-Z and 0-9
// replaced by "_" (jwt-auth gives RELAY_PLUGIN_CONFIG_JWT_AUTH).
func ConfigEnvName(name string) string {
	var b strings.Builder
	b.WriteString("RELAY_PLUGIN_CONFIG_")
	for _, r := range strings.ToUpper(name) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// SpecsFromEnv builds the plugin list from RELAY_PLUGINS-style input: a
// comma-separated list of .wasm paths, each plugin's configuration read
// with lookup(ConfigEnvName(name)) and its resources with
// lookup(ResourcesEnvName(name)). A configuration starting with "@" names
// a file to read it from.
func SpecsFromEnv(list string, lookup func(string) (string, bool)) ([]Spec, error) {
	var specs []Spec
	seen := map[string]bool{}
	for _, p := range strings.Split(list, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		name := PluginName(p)
		if seen[ConfigEnvName(name)] {
			return nil, fmt.Errorf("RELAY_PLUGINS: two plugins named %q (names come from file names)", name)
		}
		seen[ConfigEnvName(name)] = true
		s := Spec{Name: name, Path: p, ConfigVar: ConfigEnvName(name)}
		if v, ok := lookup(ConfigEnvName(name)); ok {
			if strings.HasPrefix(v, "@") {
				b, err := os.ReadFile(v[1:])
				if err != nil {
					return nil, fmt.Errorf("%s: %w", ConfigEnvName(name), err)
				}
				s.Config, s.ConfigFile = b, v[1:]
			} else {
				s.Config = []byte(v)
			}
		}
		if v, ok := lookup(ResourcesEnvName(name)); ok {
			urls, err := ParseResources(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", ResourcesEnvName(name), err)
			}
			s.Resources = urls
		}
		specs = append(specs, s)
	}
	return specs, nil
}
