package relay_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// BenchmarkBroadcastFilter measures broadcast throughput to 100 subscribers
// over loopback WebSockets, without plugins and with a Go SDK filter that
// inspects cmd and one body field. One op is one message delivered to all
// 100 subscribers; compare the two msgs/s figures.
func BenchmarkBroadcastFilter(b *testing.B) {
	for _, withFilter := range []bool{false, true} {
		name := "no-plugins"
		if withFilter {
			name = "filter"
		}
		b.Run(name, func(b *testing.B) {
			cfg := relaytest.Config(b)
			cfg.AuthorityIPs = []string{"127.0.0.1"}
			if withFilter {
				cfg.Plugins = []string{plugintest.Guest(b, "benchfilter")}
				cfg.PluginCacheDir = plugintest.CacheDir(b)
			}
			benchBroadcast(b, cfg, 100)
		})
	}
}

func benchBroadcast(b *testing.B, cfg relay.Config, subscribers int) {
	r := relaytest.Start(b, cfg, "")
	var got atomic.Int64
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range subscribers {
		c := relaytest.Dial(b, r.URL, &relaytest.DialOptions{Local: "127.0.0.1", NoRead: true})
		c.Send(`{"cmd":"JOIN","channel":"bench","protocol":"chat"}`)
		// Read our own JOINED, then count everything else.
		if _, _, err := c.Conn().Read(ctx); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, _, err := c.Conn().Read(ctx); err != nil {
					return
				}
				got.Add(1)
			}
		}()
	}
	sender := relaytest.Dial(b, r.URL, &relaytest.DialOptions{Local: "127.0.0.1"})
	sender.Send(`{"cmd":"JOIN","channel":"bench","protocol":"chat"}`)
	m := sender.NextMap()
	msg := fmt.Sprintf(`{"cmd":"chat","channel":%v,"to":-1,"text":"the quarterly report is ready, open it from the dashboard","user":"alice","ts":1732550400}`, m["channel"])
	// Subscribers see JOINED notifications for later joiners; wait for
	// them to settle before counting.
	time.Sleep(200 * time.Millisecond)
	sender.Discard()
	base := got.Load()
	const window = 50
	b.ResetTimer()
	start := time.Now()
	for sent := 0; sent < b.N; {
		n := min(window, b.N-sent)
		for range n {
			sender.Send(msg)
		}
		sent += n
		want := base + int64(sent*subscribers)
		for got.Load() < want {
			time.Sleep(20 * time.Microsecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
	cancel()
	wg.Wait()
}
