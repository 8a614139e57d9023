package relay_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// TestRejoinKeepsCurrentState: the token a member joined with is re-armed on
// disconnect with what the member held then, so an extra changed by
// SET_EXTRA survives a network blip, as on the reference server.
func TestRejoinKeepsCurrentState(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	own := join(t, a, "room", "chat", "")
	n := fmt.Sprint(own["channel"])
	watcher := guest(t, r)
	join(t, watcher, "room", "chat", grant(t, a, "room", "chat", 2, `{}`, false))
	a.Next()
	tok := grant(t, a, "room", "chat", 1, `{"n":1}`, false)
	browser := guest(t, r)
	bid := id(join(t, browser, "room", "chat", tok))
	a.Next()
	watcher.Next()

	a.Send(fmt.Sprintf(`{"cmd":"SET_EXTRA","channel":%s,"id":%s,"extra":{"n":2}}`, n, bid))
	a.NextMap()
	watcher.NextMap()

	// The browser's connection drops; the others are told it left.
	browser.Conn().Close(websocket.StatusGoingAway, "blip")
	for _, c := range []*relaytest.Client{a, watcher} {
		if m := c.NextMap(); m["cmd"] != "LEFT" || id(m) != bid {
			t.Fatalf("want LEFT of %s, got %v", bid, m)
		}
	}

	again := guest(t, r)
	mine := join(t, again, "room", "chat", tok)
	want := "map[auth:false extra:map[n:2] mode:1]"
	if got := fmt.Sprint(mine["info"]); got != want {
		t.Fatalf("the rejoined browser is %s, want %s", got, want)
	}
	for name, c := range map[string]*relaytest.Client{"authority": a, "watcher": watcher} {
		m := c.NextMap()
		if m["cmd"] != "JOINED" || id(m) != id(mine) || fmt.Sprint(m["info"]) != want {
			t.Fatalf("%s sees the rejoin as %v, want info %s", name, m, want)
		}
	}
}

// TestSetExtraVisibility: a SET_EXTRA on a guest (not an authority) is told
// only to members with mode 2 and authorities, the guest itself included
// only when it has mode 2; one on an authority is told to everyone.
func TestSetExtraVisibility(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	n := fmt.Sprint(join(t, a, "room", "chat", "")["channel"])
	members := map[string]*relaytest.Client{"authority": a}
	ids := map[string]string{}
	guests := []struct {
		name     string
		mode     int
		makeauth bool
		token    string
	}{{"recv-only", 0, false, ""}, {"send-to-auths", 1, false, ""}, {"send-to-any", 2, false, ""}, {"made-auth", 2, true, ""}}
	for i := range guests {
		guests[i].token = grant(t, a, "room", "chat", guests[i].mode, `{}`, guests[i].makeauth)
	}
	for _, g := range guests {
		c := guest(t, r)
		ids[g.name] = id(join(t, c, "room", "chat", g.token))
		members[g.name] = c
	}
	// Drain the JOINED notifications, then learn the authority's own id
	// from a broadcast it sends.
	a.Send(fmt.Sprintf(`{"cmd":"MARK","channel":%s,"to":-1}`, n))
	for _, c := range members {
		for {
			if m := c.NextMap(); m["cmd"] == "MARK" {
				ids["authority"] = fmt.Sprint(m["from"])
				break
			}
		}
	}

	told := func(target string) []string { // the rule, spelled out
		switch target {
		case "authority", "made-auth":
			return []string{"authority", "recv-only", "send-to-auths", "send-to-any", "made-auth"}
		}
		return []string{"authority", "send-to-any", "made-auth"}
	}
	for _, target := range []string{"recv-only", "send-to-auths", "send-to-any", "made-auth", "authority"} {
		a.Send(fmt.Sprintf(`{"cmd":"SET_EXTRA","channel":%s,"id":%s,"extra":{"t":%q}}`, n, ids[target], target))
		// A broadcast after it marks where the SET_EXTRA would have been.
		a.Send(fmt.Sprintf(`{"cmd":"MARK","channel":%s,"to":-1}`, n))
		want := map[string]bool{}
		for _, name := range told(target) {
			want[name] = true
		}
		for name, c := range members {
			m := c.NextMap()
			got := m["cmd"] == "SET_EXTRA"
			if got {
				if id(m) != ids[target] {
					t.Fatalf("SET_EXTRA on %s: %s was told id %v", target, name, m["id"])
				}
				c.NextMap() // the MARK
			}
			if got != want[name] {
				t.Errorf("SET_EXTRA on %s: %s told=%v, want %v", target, name, got, want[name])
			}
		}
	}
}

// TestUnsupportedWebSocketVersion: a handshake for another WebSocket version
// is answered 426 with the version the relay speaks (RFC 6455 4.4), as the
// reference server answers.
func TestUnsupportedWebSocketVersion(t *testing.T) {
	r := startRelay(t, nil)
	for _, version := range []string{"8", "14", ""} {
		nc, err := net.Dial("tcp", r.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		req := "GET / HTTP/1.1\r\nHost: " + r.Addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		if version != "" {
			req += "Sec-WebSocket-Version: " + version + "\r\n"
		}
		if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Errorf("version %q: HTTP %d, Sec-WebSocket-Version %q; want 426 and 13",
				version, resp.StatusCode, resp.Header.Get("Sec-WebSocket-Version"))
		}
	}
	// Version 13 still connects.
	join(t, authority(t, r), "c", "p", "")
}

// TestMetricsOnTheirOwnPort: with RELAY_METRICS_ADDR set, the main port
// answers GET /metrics with 404 (not 426, as if it were a WebSocket
// request), and the ops handler serves them.
func TestMetricsOnTheirOwnPort(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) { c.MetricsAddr = "127.0.0.1:0" })
	if code, body := httpGetAll(t, "http://"+r.Addr+"/metrics"); code != http.StatusNotFound || !strings.Contains(body, "RELAY_METRICS_ADDR") {
		t.Fatalf("GET /metrics on the main port: HTTP %d %q, want 404 naming RELAY_METRICS_ADDR", code, body)
	}
	ops := httptest.NewServer(r.OpsHandler())
	defer ops.Close()
	if code, body := httpGetAll(t, ops.URL+"/metrics"); code != http.StatusOK || !strings.Contains(body, "relay_connections") {
		t.Fatalf("GET /metrics on the ops handler: HTTP %d", code)
	}
}

// TestRepeatedJoinKeepsCurrentState: a member that sends JOIN again with
// the grant token it holds (accepted, JOINED again) keeps what it has now,
// an extra set by SET_EXTRA included, as a rejoin after a blip does; it
// does not fall back to the grant as minted in front of every member.
func TestRepeatedJoinKeepsCurrentState(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	n := fmt.Sprint(join(t, a, "room", "chat", "")["channel"])
	tok := grant(t, a, "room", "chat", 1, `{"n":1}`, false)
	browser := guest(t, r)
	bid := id(join(t, browser, "room", "chat", tok))
	a.Next()

	a.Send(fmt.Sprintf(`{"cmd":"SET_EXTRA","channel":%s,"id":%s,"extra":{"n":2}}`, n, bid))
	a.NextMap()

	again := join(t, browser, "room", "chat", tok)
	want := "map[auth:false extra:map[n:2] mode:1]"
	if got := fmt.Sprint(again["info"]); got != want {
		t.Fatalf("the repeated JOIN made the member %s, want %s", got, want)
	}
	if m := a.NextMap(); m["cmd"] != "JOINED" || fmt.Sprint(m["info"]) != want {
		t.Fatalf("the authority sees the repeated JOIN as %v, want info %s", m, want)
	}
	// And the token, re-armed when it leaves, still carries that state.
	browser.Conn().Close(websocket.StatusGoingAway, "blip")
	a.NextMap() // LEFT
	// The others see LEFT just before the token is re-armed: a JOIN in
	// between is refused, as a rejoin that beats the relay noticing the
	// blip is.
	back := guest(t, r)
	req := fmt.Sprintf(`{"cmd":"JOIN","channel":"room","protocol":"chat","token":%q}`, tok)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		back.Send(req)
		m := back.NextMap()
		if m["cmd"] == "JOINED" {
			if got := fmt.Sprint(m["info"]); got != want {
				t.Fatalf("rejoined after the blip as %s, want %s", got, want)
			}
			return
		}
		if m["errorcode"] != "access_denied" || time.Now().After(deadline) {
			t.Fatalf("rejoin after the blip: %v", m)
		}
	}
}
