package relay

import (
	"time"

	"github.com/relay-project/relay/relay/internal/metrics"
	"github.com/relay-project/relay/relay/internal/plugin"
)

// pluginResourceConfig turns the RELAY_PLUGIN_RESOURCE_* settings into the
// plugin host's, with fetches counted in m.
func pluginResourceConfig(cfg Config, m *metrics.Metrics) plugin.ResourceConfig {
	return plugin.ResourceConfig{
		Timeout:      cfg.PluginResourceTimeout,
		MinRefresh:   cfg.PluginResourceMinRefresh,
		MaxRefresh:   cfg.PluginResourceMaxRefresh,
		MaxBytes:     cfg.PluginResourceMaxBytes,
		StartWithout: cfg.PluginResourceStartup == "wait",
		ObserveFetch: func(name, url, outcome string) {
			m.PluginResourceFetches.WithLabelValues(name, url, outcome).Inc()
		},
	}
}

// pluginResourceAges feeds relay_plugin_resource_age_seconds at scrape time.
func (s *Server) pluginResourceAges() []metrics.ResourceAge {
	var out []metrics.ResourceAge
	for _, st := range s.plugins.Resources() {
		age := -1.0
		if !st.FetchedAt.IsZero() {
			age = time.Since(st.FetchedAt).Seconds()
		}
		out = append(out, metrics.ResourceAge{Plugin: st.Plugin, URL: st.URL, Seconds: age})
	}
	return out
}
