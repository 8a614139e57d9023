package relay_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// TestBigChannelStaysJoinable: a channel of 1,000 members with 1 KB extras
// makes a joiner's JOINED larger than RELAY_OUTBOUND_QUEUE_BYTES (1 MiB).
// Before, every joiner that sees the members (an authority, a guest with
// mode 2) was closed as a slow consumer on each attempt; the cap is about
// backlog, so one frame alone on an empty queue goes through.
func TestBigChannelStaysJoinable(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	fillChannel(t, r, a, "big", "p", 1000, 1024)
	modeTwo := grant(t, a, "big", "p", 2, `{}`, false)
	for _, tt := range []struct {
		name string
		dial func() *relaytest.Client
		tok  string
	}{
		{"an authority", func() *relaytest.Client { return authority(t, r) }, ""},
		{"a guest that sees everyone", func() *relaytest.Client { return guest(t, r) }, modeTwo},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.dial()
			c.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"big","protocol":"p","token":%q}`, tt.tok))
			f := c.Next()
			if n := strings.Count(string(f.Data), `"pad":`); n != 1000 || len(f.Data) <= relay.DefaultConfig().OutboundQueueBytes {
				t.Fatalf("JOINED lists %d members in %d bytes, want 1000 in more than the queue cap", n, len(f.Data))
			}
			// Still connected and served: it hears its own broadcast.
			n := fmt.Sprint(f.Map(t)["channel"])
			c.Send(`{"cmd":"ping","channel":` + n + `,"to":-1}`)
			if m := c.NextMap(); m["cmd"] != "ping" {
				t.Fatalf("after JOINED: %v", m)
			}
		})
	}
}

// TestExtraOverTheCapIsRefused: one member's extra is bounded on every way
// in (a plugin's is a bad output, tested with the plugin host), with a
// documented errorcode and a metric.
func TestExtraOverTheCapIsRefused(t *testing.T) {
	r := startRelay(t, func(cfg *relay.Config) { cfg.MaxExtraBytes = 4096 })
	big := fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 4096))
	fits := fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 4096-10))
	a := authority(t, r)
	a.Send(`{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":0,"extra":` + big + `}`)
	expectError(t, a, 0, "extra_too_large")
	grant(t, a, "c", "p", 0, fits, false)

	m := join(t, a, "c", "p", "")
	n := fmt.Sprint(m["channel"])
	a.Send(`{"cmd":"SET_EXTRA","channel":` + n + `,"id":` + id(m) + `,"extra":` + big + `}`)
	expectError(t, a, 0, "extra_too_large")
	a.Send(`{"cmd":"SET_EXTRA","channel":` + n + `,"id":` + id(m) + `,"extra":` + fits + `}`)
	if got := a.NextMap(); got["cmd"] != "SET_EXTRA" {
		t.Fatalf("an extra at the cap: %v", got)
	}

	st, body := newAPI(t, r, authAddr, "").post("/v1/tokens", map[string]any{
		"channel": "c", "protocol": "p", "clientmode": 0, "extra": map[string]any{"pad": strings.Repeat("x", 4096)}})
	if st != http.StatusBadRequest || body["errorcode"] != "extra_too_large" {
		t.Fatalf("POST /v1/tokens: %d %v", st, body)
	}

	_, metrics := httpGetAll(t, "http://"+r.Addr+"/metrics")
	for sample, want := range map[string]float64{
		`relay_request_errors_total{errorcode="extra_too_large",request="grant"}`:     2, // GRANT and POST /v1/tokens
		`relay_request_errors_total{errorcode="extra_too_large",request="set_extra"}`: 1,
	} {
		if v := metric(t, metrics, sample); v != want {
			t.Errorf("%s = %v, want %v", sample, v, want)
		}
	}
}

// TestChannelMemberCap: past RELAY_MAX_CHANNEL_MEMBERS a JOIN gets
// channel_full (its grant token stays usable); members may still rejoin.
func TestChannelMemberCap(t *testing.T) {
	r := startRelay(t, func(cfg *relay.Config) { cfg.MaxChannelMembers = 2 })
	a := authority(t, r)
	am := join(t, a, "c", "p", "")
	b := authority(t, r)
	join(t, b, "c", "p", "")
	a.NextMap() // b joined
	tok := grant(t, a, "c", "p", 0, `{}`, false)
	g := guest(t, r)
	g.Send(`{"cmd":"JOIN","channel":"c","protocol":"p","token":"` + tok + `"}`)
	expectError(t, g, 0, "channel_full")
	join(t, a, "c", "p", "") // a member's rejoin is not a new member
	a.Send(`{"cmd":"LEAVE","channel":` + fmt.Sprint(am["channel"]) + `}`)
	a.NextMap()
	join(t, g, "c", "p", tok) // room again, and the token was not spent
	_, metrics := httpGetAll(t, "http://"+r.Addr+"/metrics")
	if v := metric(t, metrics, `relay_request_errors_total{errorcode="channel_full",request="join"}`); v != 1 {
		t.Errorf("channel_full refusals counted: %v, want 1", v)
	}
}
