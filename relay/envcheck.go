package relay

import (
	"slices"
	"strings"

	"github.com/relay-project/relay/relay/internal/plugin"
)

// EnvWarning is an environment variable LoadConfig did not use although its
// name says it is meant for the relay: most likely a misspelling, which
// would otherwise be ignored silently (RELAY_ORIGIN for RELAY_ORIGINS).
type EnvWarning struct {
	Name    string // the variable as set
	Problem string // what is wrong with it, for people
	// Closest is the variable it most likely meant; "" when none is close.
	Closest string
}

// envPrefix starts every variable the relay reads but PORT.
const envPrefix = "RELAY_"

// pluginConfigPrefix starts each plugin's configuration variable.
const pluginConfigPrefix = "RELAY_PLUGIN_CONFIG_"

// pluginResourcesPrefix starts each plugin's resource allow-list variable.
const pluginResourcesPrefix = "RELAY_PLUGIN_RESOURCES_"

// checkEnv returns a warning for every RELAY_* variable in environ (in name
// order) that the relay does not read: not one of EnvVars, and not the
// configuration variable of one of plugins. The prefix is compared without
// case, since relay_origins is as surely meant for the relay.
func checkEnv(environ map[string]string, plugins []string) []EnvWarning {
	var known []string
	for _, v := range EnvVars() {
		known = append(known, v.Name)
	}
	var configs []string // the plugins' configuration and resource variables
	for _, p := range plugins {
		name := plugin.PluginName(strings.TrimSpace(p))
		configs = append(configs, plugin.ConfigEnvName(name), plugin.ResourcesEnvName(name))
	}
	all := slices.Concat(known, configs)
	var out []EnvWarning
	for name := range environ {
		upper := strings.ToUpper(name)
		if !strings.HasPrefix(upper, envPrefix) || slices.Contains(known, name) || slices.Contains(configs, name) {
			continue
		}
		if strings.HasPrefix(upper, pluginConfigPrefix) || strings.HasPrefix(upper, pluginResourcesPrefix) {
			w := EnvWarning{Name: name, Problem: "configures no plugin named in RELAY_PLUGINS", Closest: closest(upper, configs)}
			if len(configs) == 0 {
				w.Problem = "configures a plugin, but RELAY_PLUGINS names none"
			}
			out = append(out, w)
			continue
		}
		out = append(out, EnvWarning{Name: name, Problem: "is not a variable the relay reads (relay -h lists them)", Closest: closest(upper, all)})
	}
	slices.SortFunc(out, func(a, b EnvWarning) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// closest returns the candidate name most likely meant, or "": the nearest
// by edit distance when that distance is small for the name's length, or
// one that extends name or that name extends (RELAY_METRICS for
// RELAY_METRICS_ADDR). Ties go to the earlier candidate.
func closest(name string, candidates []string) string {
	const longest = 128 // a longer name is no typo of ours; spare the work
	if len(name) > longest {
		return ""
	}
	best, bestEff, bestDist := "", 0, 0
	for _, c := range candidates {
		d := editDistance(name, c)
		eff := d // a prefix either way counts as one edit
		if len(name) > len(envPrefix) && (strings.HasPrefix(c, name) || strings.HasPrefix(name, c)) {
			eff = min(d, 1)
		}
		if best == "" || eff < bestEff || eff == bestEff && d < bestDist {
			best, bestEff, bestDist = c, eff, d
		}
	}
	if best == "" || bestEff > 1+max(0, len(name)-len(envPrefix))/4 {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
