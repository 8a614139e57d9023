package relay_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/relaytest"
	"github.com/relay-project/relay/relay/protocol"
)

// isAuthorityFrom joins a channel from addr with headers and reports whether
// the relay treated the client as an authority.
func isAuthorityFrom(t *testing.T, r *relaytest.Relay, addr string, h http.Header) bool {
	t.Helper()
	c := relaytest.Dial(t, r.URL, &relaytest.DialOptions{Local: addr, Header: h})
	c.Send(`{"cmd":"JOIN","channel":"c","protocol":"p"}`)
	m := c.NextMap()
	return m["cmd"] == "JOINED"
}

func TestTrustedProxies(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	t.Run("nothing from a header is trusted by default", func(t *testing.T) {
		r := startRelay(t, nil)
		if isAuthorityFrom(t, r, guestAddr, hdr("X-Forwarded-For", authAddr)) {
			t.Fatal("a spoofed X-Forwarded-For from an untrusted peer gave authority")
		}
		if !isAuthorityFrom(t, r, authAddr, hdr("X-Forwarded-For", "203.0.113.9")) {
			t.Fatal("an untrusted peer's header changed its address")
		}
	})
	t.Run("X-Forwarded-For from a trusted proxy, rightmost untrusted hop", func(t *testing.T) {
		r := startRelay(t, func(c *relay.Config) {
			c.AuthorityIPs = []string{"198.51.100.7"}
			c.TrustedProxies = []string{"127.0.0.5", "10.0.0.0/8"}
		})
		const proxy = "127.0.0.5"
		for _, tc := range []struct {
			xff  []string
			want bool
		}{
			{[]string{"198.51.100.7"}, true},
			{[]string{"198.51.100.7, 10.1.1.1"}, true},           // an inner trusted hop is skipped
			{[]string{"198.51.100.7", "10.1.1.1"}, true},         // several headers form one list
			{[]string{"198.51.100.7, 203.0.113.1"}, false},       // the client forged the left part
			{[]string{"198.51.100.7, garbage, 10.2.2.2"}, false}, // stops at garbage
			{nil, false}, // no header: the proxy itself
		} {
			h := http.Header{}
			for _, v := range tc.xff {
				h.Add("X-Forwarded-For", v)
			}
			if got := isAuthorityFrom(t, r, proxy, h); got != tc.want {
				t.Errorf("X-Forwarded-For %q: authority %v, want %v", tc.xff, got, tc.want)
			}
		}
		if isAuthorityFrom(t, r, guestAddr, hdr("X-Forwarded-For", "198.51.100.7")) {
			t.Error("header from an untrusted peer believed")
		}
	})
	t.Run("platform header from a trusted proxy only", func(t *testing.T) {
		r := startRelay(t, func(c *relay.Config) {
			c.AuthorityIPs = []string{"198.51.100.7"}
			c.TrustedProxies = []string{"127.0.0.5"}
			c.ClientIPHeader = "fly-client-ip"
		})
		if !isAuthorityFrom(t, r, "127.0.0.5", hdr("Fly-Client-IP", "198.51.100.7")) {
			t.Error("platform header from the trusted proxy ignored")
		}
		if isAuthorityFrom(t, r, "127.0.0.5", hdr("X-Forwarded-For", "198.51.100.7")) {
			t.Error("X-Forwarded-For used although a platform header is configured")
		}
		if isAuthorityFrom(t, r, guestAddr, hdr("Fly-Client-IP", "198.51.100.7")) {
			t.Error("platform header from an untrusted peer believed")
		}
	})
}

func TestOrigins(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) {
		c.Origins = []string{"https://app.example.com", "https://*.example.org", "http://localhost:*"}
	})
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true}, // non-browser clients send none
		{"https://app.example.com", true},
		{"HTTPS://APP.EXAMPLE.COM", true},
		{"https://evil.example.com", false},
		{"https://a.example.org", true},
		{"https://a.b.example.org", true},
		{"https://example.org", false},
		{"http://localhost:8080", true},
		{"http://localhost.evil.com", false},
		{"null", false},
	} {
		t.Run(tc.origin, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			_, resp, err := relaytest.TryDial(t, r.URL, &relaytest.DialOptions{Header: h})
			if tc.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tc.ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden) {
				t.Fatalf("want 403, got err=%v resp=%v", err, resp)
			}
		})
	}
	t.Run("RELAY_REQUIRE_ORIGIN refuses a missing Origin", func(t *testing.T) {
		r := startRelay(t, func(c *relay.Config) { c.RequireOrigin = true })
		_, resp, err := relaytest.TryDial(t, r.URL, nil)
		if err == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("want 403, got %v", err)
		}
	})
	t.Run("the default allows pages from this machine only", func(t *testing.T) {
		r := relaytest.Start(t, relaytest.Config(t), "")
		for origin, ok := range map[string]bool{"http://localhost:3000": true, "http://127.0.0.1": true, "http://[::1]:8080": true, "https://example.com": false} {
			_, _, err := relaytest.TryDial(t, r.URL, &relaytest.DialOptions{Header: http.Header{"Origin": {origin}}})
			if (err == nil) != ok {
				t.Errorf("origin %s: accepted=%v, want %v", origin, err == nil, ok)
			}
		}
	})
}

func TestOversizeMessage(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) { c.MaxMessageBytes = 1024 })
	a := authority(t, r)
	aid := id(join(t, a, "c", "p", ""))
	big := authority(t, r)
	bigID := id(join(t, big, "c", "p", ""))
	a.Next()
	// Exactly the limit is fine.
	msg := `{"cmd":"X","channel":1,"to":` + aid + `,"pad":"`
	ok := msg + strings.Repeat("a", 1024-len(msg)-2) + `"}`
	big.Send(ok)
	if f := a.Next(); !strings.Contains(string(f.Data), `"cmd":"X"`) {
		t.Fatalf("message at the limit not delivered: %s", f.Data)
	}
	big.Send(msg + strings.Repeat("a", 1024) + `"}`)
	err := big.Closed(5 * time.Second)
	if relaytest.CloseStatus(err) != protocol.StatusMessageTooBig {
		t.Fatalf("close: %v, want 1009", err)
	}
	// The others are unaffected: they hear the departure and keep working.
	a.Expect(`{"channel":1,"success":true,"cmd":"LEFT","from":0,"id":` + bigID + `}`)
	a.Send(`{"cmd":"X","channel":1,"to":-1}`)
	a.Expect(`{"channel":1,"success":true,"from":` + aid + `,"cmd":"X"}`)
}

func TestSlowConsumer(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) {
		c.OutboundQueueBytes = 256 << 10
		c.MaxMessageBytes = 4 << 10
	})
	pub := authority(t, r)
	join(t, pub, "feed", "p", "")
	fast := authority(t, r)
	join(t, fast, "feed", "p", "")
	pub.Next()
	slow := relaytest.Dial(t, r.URL, &relaytest.DialOptions{Local: authAddr, NoRead: true})
	slow.Send(`{"cmd":"JOIN","channel":"feed","protocol":"p"}`)
	pub.Next()
	fast.Next()

	// Far more than the slow reader's socket buffers and queue can hold.
	payload := strings.Repeat("x", 3000)
	const n = 5000
	// count reads c's copies of the n broadcasts (skipping the slow
	// reader's LEFT) and closes done when it stops, early if c ends.
	count := func(c *relaytest.Client, got *atomic.Int64, done chan struct{}) {
		defer close(done)
		for got.Load() < n {
			if f := c.Next(); !strings.Contains(string(f.Data), `"cmd":"LEFT"`) {
				got.Add(1)
			}
		}
	}
	var fastGot, pubGot atomic.Int64
	fastDone, pubDone := make(chan struct{}), make(chan struct{})
	go count(fast, &fastGot, fastDone)
	go count(pub, &pubGot, pubDone) // the sender gets its own broadcasts too
	// The publisher keeps both healthy readers at most 50 messages (150 KB)
	// behind, well within their queues; the slow one never reads at all.
	for i := range n {
		for int64(i)-min(fastGot.Load(), pubGot.Load()) > 50 {
			select {
			case <-fastDone:
				t.Fatalf("the healthy reader stopped after %d of %d messages", fastGot.Load(), n)
			case <-pubDone:
				t.Fatalf("the publisher stopped reading after %d of %d messages", pubGot.Load(), n)
			case <-time.After(100 * time.Microsecond):
			}
		}
		pub.Send(fmt.Sprintf(`{"cmd":"TICK","channel":1,"to":-1,"i":%d,"p":%q}`, i, payload))
	}
	<-fastDone
	<-pubDone
	if fastGot.Load() != n || pubGot.Load() != n {
		t.Fatalf("the healthy reader got %d and the publisher %d of %d", fastGot.Load(), pubGot.Load(), n)
	}
	// The slow reader was cut off, counted under its named reason, and
	// left the channel like any disconnect.
	waitFor(t, func() bool { return r.Stats().Closed[protocol.CloseSlowConsumer] == 1 })
	waitFor(t, func() bool { return r.Clients() == 2 })
	if got := len(r.Members("feed", "p")); got != 2 {
		t.Fatalf("channel has %d members, want 2", got)
	}
	// What the slow reader finally reads ends with the close (a 1008 frame
	// when it still fit in the socket, else a cut connection).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		if _, _, err := slow.Conn().Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the slow consumer's connection is still open: %v", err)
			}
			if s := relaytest.CloseStatus(err); s != -1 && s != protocol.StatusPolicyViolation {
				t.Fatalf("slow consumer closed with %v, want 1008", err)
			}
			break
		}
	}
}
