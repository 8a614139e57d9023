package relay_test

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/cluster/natstest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// kvOps sums relay_cluster_kv_seconds_count over every operation on r.
func kvOps(b *testing.B, r *relaytest.Relay) (n float64) {
	time.Sleep(50 * time.Millisecond) // a leave's record delete follows its LEFT
	resp, err := http.Get("http://" + r.Addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(data)
	for _, m := range regexp.MustCompile(`relay_cluster_kv_seconds_count\{op="[a-z_]+"\} (\d+)`).FindAllStringSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(m[1], 64)
		n += v
	}
	return n
}

// BenchmarkClusterJoin measures a JOIN (to its JOINED) and a LEAVE on
// instance B of a two-instance cluster, with an authority on A in the
// channel, and reports the shared-state operations per JOIN and LEAVE
// (each one NATS round trip, a subscription's three: flush, members,
// retained).
func BenchmarkClusterJoin(b *testing.B) {
	srv := natstest.Start(b)
	onNATS := func(c *relay.Config) { c.NATSURL, c.ClusterNodeTTL = srv.URL(), nodeTTL }
	cfgA, cfgB := relaytest.Config(b), relaytest.Config(b)
	cfgA.AuthorityIPs, cfgB.AuthorityIPs = []string{authAddr}, []string{authAddr}
	onNATS(&cfgA)
	onNATS(&cfgB)
	a, rb := relaytest.Start(b, cfgA, ""), relaytest.Start(b, cfgB, "")
	anchor := relaytest.Dial(b, a.URL, &relaytest.DialOptions{Local: authAddr})
	anchor.Send(`{"cmd":"JOIN","channel":"bench","protocol":"p"}`)
	anchor.Next()
	anchor.Discard()
	for _, kind := range []string{"authority", "token", "first-member"} {
		b.Run(kind, func(b *testing.B) {
			c := relaytest.Dial(b, rb.URL, &relaytest.DialOptions{Local: guestAddr})
			minter := relaytest.Dial(b, rb.URL, &relaytest.DialOptions{Local: authAddr})
			if kind == "token" {
				// A second member on B keeps the channel subscribed there.
				keep := relaytest.Dial(b, rb.URL, &relaytest.DialOptions{Local: authAddr})
				keep.Send(`{"cmd":"JOIN","channel":"bench","protocol":"p"}`)
				keep.Next()
				keep.Discard()
			}
			if kind != "token" {
				c = relaytest.Dial(b, rb.URL, &relaytest.DialOptions{Local: authAddr})
			}
			if kind == "authority" {
				keep := relaytest.Dial(b, rb.URL, &relaytest.DialOptions{Local: authAddr})
				keep.Send(`{"cmd":"JOIN","channel":"bench","protocol":"p"}`)
				keep.Next()
				keep.Discard()
			}
			var ops float64
			i := 0
			for b.Loop() {
				i++
				name, tok := "bench", ""
				if kind == "first-member" {
					name = fmt.Sprintf("fresh-%d", i)
				}
				if kind == "token" {
					b.StopTimer()
					minter.Send(`{"cmd":"GRANT","channel":"bench","protocol":"p","clientmode":2,"extra":{}}`)
					tok = minter.NextMap()["token"].(string)
					b.StartTimer()
				}
				before := 0.0
				if i == 1 {
					b.StopTimer()
					before = kvOps(b, rb)
					b.StartTimer()
				}
				req := fmt.Sprintf(`{"cmd":"JOIN","channel":%q,"protocol":"p"`, name)
				if tok != "" {
					req += fmt.Sprintf(`,"token":%q`, tok)
				}
				c.Send(req + "}")
				m := c.NextMap()
				if m["cmd"] != "JOINED" {
					b.Fatalf("JOIN: %v", m)
				}
				c.Send(fmt.Sprintf(`{"cmd":"LEAVE","channel":%v}`, m["channel"]))
				for m := c.NextMap(); m["cmd"] != "LEFT"; m = c.NextMap() {
				}
				if i == 1 {
					b.StopTimer()
					ops = kvOps(b, rb) - before
					b.StartTimer()
				}
			}
			b.ReportMetric(ops, "kv-ops/join+leave")
		})
	}
}
