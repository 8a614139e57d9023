package relay_test

import (
	"fmt"
	"testing"

	"github.com/coder/websocket"

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
