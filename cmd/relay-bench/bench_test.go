package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// smokeTargets returns the servers the smoke tests drive: the limit server
// always, and the real relay once it is linked in (see relay_smoke_test.go).
func smokeTargets(t *testing.T) []target {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ls, err := startLimitServer(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); ls.Wait() })
	ts := []target{{name: "limit", addr: ls.Addr(), path: "/"}}
	return append(ts, relayTargets(t)...)
}

// TestSmoke runs every scenario briefly and asserts it completes with zero
// loss. It checks that the generator works, never how fast anything is.
func TestSmoke(t *testing.T) {
	for _, tgt := range smokeTargets(t) {
		t.Run(tgt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cases := []struct {
				name string
				run  func(*result) error
				// check asserts scenario-specific outcomes.
				check func(*testing.T, *result)
			}{
				{"fanout-throughput", func(r *result) error {
					return runFanout(ctx, tgt, fanoutOptions{N: 20, Size: 200, Duration: 300 * time.Millisecond, Window: 64, Batch: 8}, r)
				}, func(t *testing.T, r *result) {
					if r.Published == 0 || r.Delivered != r.Published*20 {
						t.Errorf("published %d, delivered %d, want 20 per broadcast", r.Published, r.Delivered)
					}
					if r.Reorder != 0 {
						t.Errorf("reordered %d", r.Reorder)
					}
					if r.Latency == nil || r.Latency.Count != uint64(r.Delivered) {
						t.Errorf("latency histogram %+v does not count every delivery", r.Latency)
					}
				}},
				{"fanout-latency", func(r *result) error {
					return runFanout(ctx, tgt, fanoutOptions{N: 10, Size: 200, Duration: 300 * time.Millisecond, Rate: 100}, r)
				}, func(t *testing.T, r *result) {
					// 100 msg/s for 0.3 s: about 30 broadcasts.
					if r.Published < 20 || r.Published > 40 {
						t.Errorf("published %d at 100/s in 0.3 s", r.Published)
					}
					if r.Delivered != r.Published*10 {
						t.Errorf("delivered %d of %d", r.Delivered, r.Published*10)
					}
				}},
				{"idle", func(r *result) error {
					return runIdle(ctx, tgt, connOptions{K: 50, Conc: 8, Settle: 10 * time.Millisecond}, r)
				}, func(t *testing.T, r *result) {
					if r.Survived != 50 {
						t.Errorf("%d of 50 idle members got the final broadcast", r.Survived)
					}
				}},
				{"joinrate", func(r *result) error {
					return runJoinrate(ctx, tgt, connOptions{K: 50, Conc: 8, PreMint: true}, r)
				}, func(t *testing.T, r *result) {
					if r.JoinsPerS <= 0 || r.Latency == nil || r.Latency.Count != 50 {
						t.Errorf("joins/s %v, latency %+v", r.JoinsPerS, r.Latency)
					}
				}},
				{"hold", func(r *result) error {
					return runHold(ctx, tgt, connOptions{K: 40, Conc: 8, Sources: 2, Hold: 300 * time.Millisecond, Keepalive: 100 * time.Millisecond}, r)
				}, func(t *testing.T, r *result) {
					if r.Survived != 40 {
						t.Errorf("%d of 40 held members survived", r.Survived)
					}
				}},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					var r result
					if err := c.run(&r); err != nil {
						t.Fatal(err)
					}
					if r.Loss != 0 {
						t.Errorf("loss %d", r.Loss)
					}
					c.check(t, &r)
				})
			}
		})
	}
}

// TestDeliveredFrame checks that a broadcast comes back as exactly -size
// bytes in the relay's key order, so both servers move the same bytes.
func TestDeliveredFrame(t *testing.T) {
	for _, tgt := range smokeTargets(t) {
		t.Run(tgt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			pub, err := newPublisher(ctx, tgt, "bench-frame", 1)
			if err != nil {
				t.Fatal(err)
			}
			defer pub.ws.close()
			pub.mint(ctx, 1)
			tok, err := pub.take(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sub, err := joinMember(ctx, &net.Dialer{}, tgt, "bench-frame", tok, 4096)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.close()
			for _, size := range []int{200, 1000} {
				m := newMsgTemplate(pub.channel, pub.id, size)
				if err := pub.ws.write(m.appendFrame(nil, 7, 12345)); err != nil {
					t.Fatal(err)
				}
				_ = sub.c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, p, err := sub.readMessage()
				if err != nil {
					t.Fatal(err)
				}
				if len(p) != size {
					t.Errorf("delivered %d bytes, want %d: %s", len(p), size, p)
				}
				if want := string(m.deliveredPrefix()) + `,"seq":7,"t":12345,"p":"`; !strings.HasPrefix(string(p), want) {
					t.Errorf("delivered %s\nwant prefix %s", p, want)
				}
				var v map[string]any
				if err := json.Unmarshal(p, &v); err != nil {
					t.Errorf("delivered frame is not JSON: %v", err)
				}
				seq, ts, ok := scanSeqTime(p)
				if !ok || seq != 7 || ts != 12345 {
					t.Errorf("scanSeqTime = %d, %d, %v", seq, ts, ok)
				}
			}
		})
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, u := range []string{"ws://10.1.2.3:7328/", "ws://192.168.0.1/", "wss://127.0.0.1/", "http://127.0.0.1/"} {
		if _, err := loopbackTarget("relay", u, 0); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	for _, u := range []string{"ws://127.0.0.1:7328/", "ws://[::1]:7328/drc/", "ws://127.0.0.9:1/"} {
		if _, err := loopbackTarget("relay", u, 0); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
}

func TestParseFlagsBounds(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "0", "fanout"},
		{"-k", "1000000", "hold"},
		{"-d", "1h", "fanout"},
		{"-hold", "11m", "hold"},
		{"nosuch"},
		{"-limit=false", "fanout"},
		{"-plugin", "x.wasm", "fanout"},
		{"-peer", "centrifugo", "idle"},
		{"-url", "ws://127.0.0.1:8000/connection/websocket", "-peer", "centrifugo", "fanout"},
		{"-url", "ws://127.0.0.1:8000/", "-peer", "nosuch", "idle"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	c, err := parseFlags([]string{"-repeat", "3", "fanout"})
	if err != nil {
		t.Fatal(err)
	}
	if c.timeout <= 0 || c.timeout > 30*time.Minute {
		t.Errorf("timeout %v not bounded", c.timeout)
	}
}

func TestHistQuantiles(t *testing.T) {
	var h hist
	for i := int64(1); i <= 10000; i++ {
		h.add(i * 1000) // 1µs .. 10ms
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}} {
		got := h.quantile(c.q)
		if d := got - c.want; d < -c.want/25 || d > c.want/25 {
			t.Errorf("q%v = %v, want %v within 4%%", c.q, got, c.want)
		}
	}
	if h.quantile(1) != 10*time.Millisecond {
		t.Errorf("max quantile %v", h.quantile(1))
	}
}

func TestFractions(t *testing.T) {
	rs := []*result{
		{Scenario: "fanout", Target: "relay", N: 100, DeliveriesPerS: 900},
		{Scenario: "fanout", Target: "relay+plugin", N: 100, DeliveriesPerS: 600},
		{Scenario: "fanout", Target: "limit", N: 100, DeliveriesPerS: 1200},
		{Scenario: "fanout", Target: "relay", N: 100, DeliveriesPerS: 500},
		{Scenario: "fanout", Target: "limit", N: 100, DeliveriesPerS: 1000, Error: "failed"},
		{Scenario: "fanout", Target: "relay", N: 100, DeliveriesPerS: 800},
		{Scenario: "fanout", Target: "limit", N: 100, DeliveriesPerS: 1600},
	}
	fillFractions(rs)
	for i, want := range []float64{0.75, 0.5, 0, 0, 0, 0.5, 0} {
		if rs[i].LimitFraction != want {
			t.Errorf("run %d (%s): fraction %v, want %v (its own round's limit run)", i, rs[i].Target, rs[i].LimitFraction, want)
		}
	}
}

func TestSummaryMedians(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for _, v := range []float64{100, 300, 200} {
		b, _ := json.Marshal(&result{Scenario: "fanout", Target: "relay", N: 10, DeliveriesPerS: v})
		l, _ := json.Marshal(&result{Scenario: "fanout", Target: "limit", N: 10, DeliveriesPerS: 400})
		lines = append(lines, string(b), string(l))
	}
	failed, _ := json.Marshal(&result{Scenario: "fanout", Target: "relay", N: 10, DeliveriesPerS: 9999, Error: "boom"})
	lines = append(lines, string(failed))
	path := dir + "/r.jsonl"
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := summarize([]string{path}, &out); err != nil {
		t.Fatal(err)
	}
	row := strings.Fields(strings.Split(out.String(), "\n")[1])
	// scenario target n/k rate runs deliv/s of-limit ...; fractions per
	// round: 25%, 75%, 50%.
	if row[0] != "fanout" || row[4] != "3" || row[5] != "200" || row[6] != "50%" {
		t.Errorf("summary row %q: want 3 runs (the failed one left out), median 200, 50%% of limit", row)
	}
}
