package client_test

import (
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/client"
	"github.com/relay-project/relay/relay/internal/cluster/natstest"
)

// One flow across two instances of a cluster: the backend (an authority)
// on B mints a token, the browser joins with it on A, the backend joins
// on B and sees it; a request from the browser to the backend and the
// backend's reply cross instances.
func TestClientAcrossInstances(t *testing.T) {
	srv := natstest.Start(t)
	onNATS := func(c *relay.Config) { c.NATSURL, c.ClusterNodeTTL = srv.URL(), 3*time.Second }
	a, b := startRelay(t, onNATS), startRelay(t, onNATS)
	ctx := ctx5(t)
	backend := dial(t, b, "127.0.0.1")
	browser := dial(t, a, "127.0.0.2")

	grant, err := backend.CreateToken(ctx, "room", "chat", &client.TokenOptions{ClientMode: client.SendToAuths, Extra: map[string]any{"name": "ann"}})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := browser.Join(ctx, "room", "chat", &client.JoinOptions{Token: grant.Token})
	if err != nil {
		t.Fatal(err)
	}
	bch, err := backend.Join(ctx, "room", "chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bch.Members) != 2 {
		t.Fatalf("the backend on B sees %d members, want 2", len(bch.Members))
	}
	if _, err := browser.WaitFor(ctx, func(ev client.Event) bool {
		j, ok := ev.(*client.JoinedEvent)
		return ok && j.Member.ID == backend.ID()
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		m, err := backend.WaitMessage(ctx, bch.Number, "ping")
		if err == nil {
			backend.Send(ctx, bch.Number, m.From, "pong", map[string]any{"n": 1})
		}
	}()
	authID, ok := browser.RandomAuthority(ch.Number)
	if !ok || authID != backend.ID() {
		t.Fatalf("random authority %d %v, want the backend %d", authID, ok, backend.ID())
	}
	reply, err := browser.Request(ctx, ch.Number, authID, "ping", nil, "pong")
	if err != nil {
		t.Fatal(err)
	}
	if reply.From != backend.ID() {
		t.Fatalf("reply from %d, want %d", reply.From, backend.ID())
	}
}
