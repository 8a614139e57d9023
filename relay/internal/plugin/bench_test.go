package plugin_test

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
)

// BenchmarkFilterMessage measures one filter-message call into a Go SDK
// plugin that inspects cmd and one body field, with the per-call deadline
// enforced, on a 224-byte chat message. It reports the median and p99
// latency besides the mean (ns/op).
func BenchmarkFilterMessage(b *testing.B) {
	h, _ := load(b, plugin.Config{
		Plugins: []plugin.Spec{{Name: "benchfilter", Path: plugintest.Guest(b, "benchfilter")}},
		Timeout: 100 * time.Millisecond,
	})
	body := `{"text":"the quarterly report is ready, open it from the dashboard","user":"alice","room":"general","ts":1732550400,"meta":{"client":"web","v":"1.2.3"}}`
	req := msg("chat", body)
	ctx := context.Background()
	if out := h.FilterMessage(ctx, req); out.Action != plugin.Deliver {
		b.Fatalf("warm-up call: %+v", out)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		out := h.FilterMessage(ctx, req)
		lat = append(lat, time.Since(t0))
		if out.Action != plugin.Deliver {
			b.Fatalf("call: %+v", out)
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkFilterMessageParallel measures filter throughput with GOMAXPROCS
// callers sharing the instance pool.
func BenchmarkFilterMessageParallel(b *testing.B) {
	h, _ := load(b, plugin.Config{
		Plugins: []plugin.Spec{{Name: "benchfilter", Path: plugintest.Guest(b, "benchfilter")}},
	})
	req := msg("chat", `{"text":"the quarterly report is ready","user":"alice"}`)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if out := h.FilterMessage(context.Background(), req); out.Action != plugin.Deliver {
				b.Errorf("call: %+v", out)
				return
			}
		}
	})
}
