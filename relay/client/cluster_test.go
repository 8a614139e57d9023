package client_test

import (
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/client"
	"github.com/relay-project/relay/relay/internal/cluster/natstest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// The Go client across two instances on one NATS: the backend (an
// authority) on B grants a token, the browser joins with it on A, a
// broadcast from B reaches A, the browser's direct reply reaches B, a
// request from A is answered from B, and B is told LEFT when the browser
// goes away.
func TestClientAcrossInstances(t *testing.T) {
	srv := natstest.Start(t)
	var rs []*relaytest.Relay
	for range 2 {
		rs = append(rs, startRelay(t, func(c *relay.Config) { c.NATSURL, c.ClusterNodeTTL = srv.URL(), 3*time.Second }))
	}
	ctx := ctx5(t)
	browser := dial(t, rs[0], "127.0.0.2") // instance A
	backend := dial(t, rs[1], "127.0.0.1") // instance B

	bch, err := backend.Join(ctx, "room", "chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	grant, err := backend.CreateToken(ctx, "room", "chat", &client.TokenOptions{ClientMode: client.SendToAny, Extra: map[string]any{"name": "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := browser.Join(ctx, "room", "chat", &client.JoinOptions{Token: grant.Token})
	if err != nil {
		t.Fatalf("join on A with B's token: %v", err)
	}
	backendID, browserID := bch.Self.ID, ch.Self.ID
	if backendID == browserID || len(ch.Members) != 2 || ch.Self.Extra["name"] != "bob" {
		t.Fatalf("browser's channel on A %+v", ch)
	}
	if id, ok := browser.RandomAuthority(ch.Number); !ok || id != backendID {
		t.Fatalf("browser on A sees authority %d %v, want %d", id, ok, backendID)
	}
	ev, err := backend.WaitFor(ctx, func(ev client.Event) bool { _, ok := ev.(*client.JoinedEvent); return ok })
	if err != nil || ev.(*client.JoinedEvent).Member.ID != browserID {
		t.Fatalf("backend on B: joined event %+v %v", ev, err)
	}

	if err := backend.Broadcast(ctx, bch.Number, "news", map[string]any{"title": "relay"}); err != nil {
		t.Fatal(err)
	}
	m, err := browser.WaitMessage(ctx, ch.Number, "news")
	if err != nil || m.From != backendID || string(m.Fields["title"]) != `"relay"` {
		t.Fatalf("broadcast from B on A: %+v %v", m, err)
	}
	if err := browser.Send(ctx, ch.Number, m.From, "thanks", map[string]any{"ok": true}); err != nil {
		t.Fatal(err)
	}
	r, err := backend.WaitMessage(ctx, bch.Number, "thanks")
	if err != nil || r.From != browserID || string(r.Fields["ok"]) != "true" {
		t.Fatalf("direct reply from A on B: %+v %v", r, err)
	}

	// A request from A answered on B.
	go func() {
		m, err := backend.WaitMessage(ctx, bch.Number, "ping")
		if err == nil {
			backend.Send(ctx, bch.Number, m.From, "pong", map[string]any{"n": 1})
		}
	}()
	if pong, err := browser.Request(ctx, ch.Number, backendID, "ping", nil, "pong"); err != nil || pong.From != backendID {
		t.Fatalf("request from A answered on B: %+v %v", pong, err)
	}

	browser.Close()
	ev, err = backend.WaitFor(ctx, func(ev client.Event) bool { _, ok := ev.(*client.LeftEvent); return ok })
	if err != nil || ev.(*client.LeftEvent).ID != browserID || len(backend.Channel(bch.Number).Members) != 1 {
		t.Fatalf("backend on B: left event %+v %v", ev, err)
	}
}
