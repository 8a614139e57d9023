package relay_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// busyLoop sends req over c and reads its answer, again and again, until
// stop; it counts the round trips in n. It uses the connection directly so
// it may run outside the test goroutine.
func busyLoop(c *relaytest.Client, req string, stop *atomic.Bool, n *atomic.Int64) {
	ctx := context.Background()
	for !stop.Load() {
		if c.Conn().Write(ctx, websocket.MessageText, []byte(req)) != nil {
			return
		}
		if _, _, err := c.Conn().Read(ctx); err != nil {
			return
		}
		n.Add(1)
	}
}

// TestSlowPluginDoesNotStallOtherSenders: eight senders keep a 50 ms
// filter's two instances busy; a sender from another address still has
// every message delivered within the plugin deadline plus a small bound.
// Before, it queued behind all of theirs (seconds, under no deadline).
func TestSlowPluginDoesNotStallOtherSenders(t *testing.T) {
	const timeout = 100 * time.Millisecond
	const healthyAddr = "127.0.0.3"
	r := startRelay(t, func(cfg *relay.Config) {
		withPlugins(t, cfg, map[string]string{"chaos": ""}, "chaos")
		cfg.AuthorityIPs = []string{authAddr, healthyAddr}
		cfg.PluginTimeout = timeout
		cfg.PluginInstances = 2
	})
	var stop atomic.Bool
	var busy atomic.Int64
	var wg sync.WaitGroup
	var reqs []string
	busyConns := make([]*relaytest.Client, 8)
	for i := range busyConns {
		c := relaytest.Dial(t, r.URL, &relaytest.DialOptions{Local: authAddr, NoRead: true})
		c.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"busy%d","protocol":"p"}`, i))
		_, data, err := c.Conn().Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m := relaytest.Frame{Data: data}.Map(t)
		if m["cmd"] != "JOINED" {
			t.Fatalf("busy sender's JOIN: %v", m)
		}
		busyConns[i] = c
		reqs = append(reqs, fmt.Sprintf(`{"cmd":"slow","channel":%v,"to":-1}`, m["channel"])) // a 50 ms filter call
	}
	h := relaytest.Dial(t, r.URL, &relaytest.DialOptions{Local: healthyAddr})
	m := join(t, h, "healthy", "p", "")
	n := fmt.Sprint(m["channel"])
	for i, c := range busyConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			busyLoop(c, reqs[i], &stop, &busy)
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	time.Sleep(200 * time.Millisecond) // the busy senders fill the queue

	var lat []time.Duration
	delivered := 0
	start := time.Now()
	for i := range 20 {
		sent := time.Now()
		h.Send(`{"cmd":"pass","channel":` + n + `,"to":-1,"i":` + fmt.Sprint(i) + `}`)
		f := h.NextMap()
		lat = append(lat, time.Since(sent))
		switch {
		case f["cmd"] == "pass":
			delivered++
		case f["errorcode"] != "plugin_timeout":
			t.Fatalf("message %d: %v", i, f)
		}
	}
	total := time.Since(start)
	slices.Sort(lat)
	t.Logf("healthy sender: 20 messages in %v, %d delivered (median %v, worst %v); busy senders: %d answers", total, delivered, lat[10], lat[19], busy.Load())
	// Every message is answered by the deadline plus scheduling slack on a
	// shared machine; before, each waited for the busy senders' queue.
	if worst := lat[19]; worst > timeout+schedulingSlack {
		t.Fatalf("a healthy message took %v beside 8 busy senders; the plugin deadline is %v", worst, timeout)
	}
	// And most get through: the healthy sender waits for one busy call at
	// most, not for their queue.
	if delivered < 8 {
		t.Fatalf("only %d of 20 healthy messages were delivered", delivered)
	}
	if busy.Load() == 0 {
		t.Fatal("the busy senders were not served")
	}
}

// fakeJWT is a well-formed HS256 JWT of about n bytes with a wrong
// signature: jwt-auth has to decode and verify it to refuse it.
func fakeJWT(n int) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	pad := strings.Repeat("a", n*3/4)
	c := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"relay","pad":"` + pad + `"}`))
	return h + "." + c + "." + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
}

// TestJWTFloodDoesNotSlowALegitimateJoin: sixteen connections from one
// address send JOINs with large fake JWTs as fast as they are answered; a
// browser from another address joining with a valid JWT stays about as
// fast as without them. With the default RELAY_PLUGIN_MAX_TOKEN_BYTES the
// host refuses those tokens before jwt-auth runs; with the cap raised so
// that jwt-auth verifies each (30 ms of work), the attackers' calls queue
// behind each other and the browser waits for one of them at most.
func TestJWTFloodDoesNotSlowALegitimateJoin(t *testing.T) {
	for _, tt := range []struct {
		name       string
		maxToken   int
		tokenBytes int
		answer     string
	}{
		{"tokens over the cap are refused before the plugin", 0, 59 << 10, "token_too_large"},
		// With the cap raised, jwt-auth refuses a token over 16 KB itself,
		// unverified, so a flood of them costs the host's copy, not a
		// signature check. That the pool shares its instances fairly between
		// addresses when calls are slow is measured with a slow guest, where
		// the pool and not the CPU is the bottleneck, in relay/internal/plugin
		// (TestOneAddressCannotMonopoliseThePool).
	} {
		t.Run(tt.name, func(t *testing.T) { jwtFlood(t, tt.maxToken, tt.tokenBytes, tt.answer) })
	}
}

func jwtFlood(t *testing.T, maxToken, tokenBytes int, answer string) {
	const attackAddr = "127.0.0.4"
	r := startRelay(t, func(cfg *relay.Config) {
		withPlugins(t, cfg, map[string]string{
			"jwt-auth": `{"keys":[{"alg":"HS256","secret":"` + jwtSecret + `"}],"audience":"relay"}`,
		}, "jwt-auth")
		cfg.PluginInstances = 2
		cfg.PluginTimeout = 5 * time.Second // the attackers' calls are slow, not failing
		if maxToken > 0 {
			cfg.PluginMaxTokenBytes = maxToken
		}
	})
	tok := hsJWT(map[string]any{"aud": "relay", "exp": time.Now().Add(time.Minute).Unix(),
		"relay": map[string]any{"channels": []string{"room"}, "protocols": []string{"chat"}}})
	g := guest(t, r)
	joins := func(k int) time.Duration {
		var lat []time.Duration
		for range k {
			start := time.Now()
			m := join(t, g, "room", "chat", tok)
			lat = append(lat, time.Since(start))
			g.Send(`{"cmd":"LEAVE","channel":` + fmt.Sprint(m["channel"]) + `}`)
			g.NextMap()
		}
		slices.Sort(lat)
		return lat[len(lat)*9/10]
	}
	joins(5) // warm up
	quiet := joins(30)

	fake := fakeJWT(tokenBytes)
	a := relaytest.Dial(t, r.URL, &relaytest.DialOptions{Local: attackAddr})
	a.Send(`{"cmd":"JOIN","channel":"room","protocol":"chat","token":"` + fake + `"}`)
	expectError(t, a, 0, answer)

	var stop atomic.Bool
	var sent atomic.Int64
	var wg sync.WaitGroup
	attackStart := time.Now()
	for range 16 {
		c := relaytest.Dial(t, r.URL, &relaytest.DialOptions{Local: attackAddr, NoRead: true})
		wg.Add(1)
		go func() {
			defer wg.Done()
			busyLoop(c, `{"cmd":"JOIN","channel":"room","protocol":"chat","token":"`+fake+`"}`, &stop, &sent)
		}()
	}
	time.Sleep(200 * time.Millisecond)
	attacked := joins(30)
	stop.Store(true)
	wg.Wait()
	// Each attacker waits for its answer before sending again, so an
	// attacker's JOIN took 16 connections' time over the answers' count.
	attackerJoin := time.Since(attackStart) * 16 / time.Duration(max(sent.Load(), 1))
	t.Logf("legitimate JOIN, 90th percentile: %v alone, %v beside 16 attackers; an attacker's JOIN took %v on average (%d answered)",
		quiet, attacked, attackerJoin, sent.Load())
	if sent.Load() < 30 {
		t.Fatalf("the attackers were hardly served (%d JOINs): the test did not load the relay", sent.Load())
	}
	_, body := httpGetAll(t, "http://"+r.Addr+"/metrics")
	// The refused tokens never reached the plugin: it ran for the
	// legitimate JOINs alone, and every refusal is counted.
	calls := metric(t, body, `relay_plugin_calls_total{hook="authorize-join",outcome="allow",plugin="jwt-auth"}`)
	refused := metric(t, body, `relay_request_errors_total{errorcode="`+answer+`",request="join"}`)
	if calls != 65 || refused < float64(sent.Load()) {
		t.Fatalf("jwt-auth allowed %v JOINs (want the 65 legitimate ones); %v refusals counted for %d answers", calls, refused, sent.Load())
	}
	// The legitimate JOIN is served like any one of the 17 connections
	// sharing the CPU, not behind the attackers' calls: no slower than
	// one attacker's own JOIN, give or take scheduling.
	if attacked > 2*attackerJoin+schedulingSlack {
		t.Fatalf("a legitimate JOIN took %v beside the attackers (%v alone); theirs took %v", attacked, quiet, attackerJoin)
	}
}

// TestOversizedRewriteIsRefused: a filter-message rewrite larger than
// RELAY_MAX_MESSAGE_BYTES fails under the failure policy. Before, an 8 MB
// rewrite was delivered and closed every recipient (the sender included)
// as a slow consumer.
func TestOversizedRewriteIsRefused(t *testing.T) {
	r := startRelay(t, func(cfg *relay.Config) {
		withPlugins(t, cfg, map[string]string{"chaos": ""}, "chaos")
		cfg.PluginMemoryMB = 128
		cfg.PluginTimeout = 5 * time.Second
	})
	a := authority(t, r)
	m := join(t, a, "c", "p", "")
	n := fmt.Sprint(m["channel"])
	b := authority(t, r)
	bm := join(t, b, "c", "p", "")
	a.NextMap() // b joined
	a.Send(`{"cmd":"hugebody","channel":` + n + `,"to":-1}`)
	expectError(t, a, int(mustInt(t, m["channel"])), "plugin_bad_output")
	b.Send(`{"cmd":"pass","channel":` + n + `,"to":-1}`)
	want := `{"channel":` + n + `,"success":true,"from":` + id(bm) + `,"cmd":"pass"}`
	b.Expect(want) // b saw no 8 MB message and is still connected
	a.Expect(want)
}
