package jsclient_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/cluster/natstest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// One flow across two instances of a cluster: the page joins on A with a
// token minted on B, the authority on B hears JOINED and broadcasts, and
// the page receives it.
func TestBrowserAcrossInstances(t *testing.T) {
	srv := natstest.Start(t)
	cfg := relaytest.Config(t)
	cfg.NATSURL, cfg.ClusterNodeTTL = srv.URL(), 3*time.Second
	w := newWorld(t) // its own relay stays unused: the page talks to A
	w.relay = relaytest.Start(t, cfg, "")
	b := relaytest.Start(t, cfg, "")
	ctx := testContext(t)
	auth, authID := authority(t, b.URL, "news", "demo")
	tok, err := mint(ctx, b.URL, "news", "demo", 0)
	if err != nil {
		t.Fatal(err)
	}

	p := w.page(ctx)
	var joined struct {
		Channel int
		ID      int
		Clients map[string]struct{ Auth bool }
	}
	w.eval(ctx, p, fmt.Sprintf(`(async () => {
		window.c = new RelayClient(%q);
		record(c, ['message']);
		return await c.join('news', 'demo', { token: %q, ipauth: false });
	})()`, w.wsURL(), tok), &joined)
	if a, ok := joined.Clients[fmt.Sprint(authID)]; !ok || !a.Auth {
		t.Fatalf("the page on A lists %+v, not the authority %d on B", joined.Clients, authID)
	}
	if m := nextCmd(t, auth, "JOINED"); number(t, m["id"]) != joined.ID {
		t.Fatalf("the authority on B saw %v, want the page's id %d", m, joined.ID)
	}
	auth.Send(map[string]any{"cmd": "headline", "channel": 1, "to": -1, "text": "across"})
	w.waitFor(ctx, p, `events.some((e) => e.detail.cmd === 'headline')`)
	var got struct {
		From int
		Text string
	}
	w.eval(ctx, p, `events.find((e) => e.detail.cmd === 'headline').detail`, &got)
	if got.From != authID || got.Text != "across" {
		t.Fatalf("the page received %+v, want %q from %d", got, "across", authID)
	}
}
