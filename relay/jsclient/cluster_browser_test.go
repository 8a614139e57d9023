package jsclient_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/cluster/natstest"
	"github.com/relay-project/relay/relay/internal/relaytest"
	"github.com/relay-project/relay/relay/jsclient/browsertest"
)

// relay.js across two instances on one NATS: the page is a member on
// instance A, the authority is on instance B. B grants, the page joins on A
// with the token, B's broadcast reaches the page, the page's direct reply
// reaches B, and B is told LEFT when the tab closes.
func TestBrowserAcrossInstances(t *testing.T) {
	w := &world{t: t, browser: browsertest.Start(t)}
	srv := natstest.Start(t)
	var rs []*relaytest.Relay
	for range 2 {
		cfg := relaytest.Config(t)
		cfg.NATSURL, cfg.ClusterNodeTTL = srv.URL(), 3*time.Second
		rs = append(rs, relaytest.Start(t, cfg, ""))
	}
	w.relay = rs[0] // the page's instance: it loads relay.js from A and connects to A
	mux := http.NewServeMux()
	mux.HandleFunc("GET /blank.html", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(rw, `<!doctype html><meta charset="utf-8"><title>relay.js cluster test</title><body></body>`)
	})
	w.pages = httptest.NewServer(mux)
	t.Cleanup(w.pages.Close)
	ctx := testContext(t)

	auth := relaytest.Dial(t, rs[1].URL, nil) // loopback: an authority by IP
	auth.Send(map[string]any{"cmd": "JOIN", "channel": "desk", "protocol": "support"})
	aj := nextCmd(t, auth, "JOINED")
	authID, authCh := number(t, aj["id"]), number(t, aj["channel"])
	auth.Send(map[string]any{"cmd": "GRANT", "channel": "desk", "protocol": "support", "clientmode": 2, "extra": map[string]any{"name": "ann"}})
	tok, _ := nextCmd(t, auth, "GRANTED")["token"].(string)

	p := w.page(ctx)
	var joined struct {
		Channel int
		ID      int
		Clients map[string]struct{ Auth bool }
	}
	w.eval(ctx, p, fmt.Sprintf(`(async () => {
		window.c = new RelayClient(%q);
		record(c, ['message']);
		return await c.join('desk', 'support', { token: %q, ipauth: false });
	})()`, w.wsURL(), tok), &joined)
	if a, ok := joined.Clients[fmt.Sprint(authID)]; !ok || !a.Auth || joined.ID == authID {
		t.Fatalf("page on A joined with %+v: want authority %d on B listed", joined, authID)
	}
	if m := nextCmd(t, auth, "JOINED"); number(t, m["id"]) != joined.ID {
		t.Fatalf("authority on B saw %v, want the page's id %d", m, joined.ID)
	}

	auth.Send(map[string]any{"cmd": "hello", "channel": authCh, "to": -1, "text": "how can we help?"})
	w.waitFor(ctx, p, `events.some((e) => e.detail.cmd === 'hello')`)
	var got struct {
		From int
		Text string
	}
	w.eval(ctx, p, `events.find((e) => e.detail.cmd === 'hello').detail`, &got)
	if got.From != authID || got.Text != "how can we help?" {
		t.Fatalf("page on A received %+v, want the broadcast from %d on B", got, authID)
	}

	w.eval(ctx, p, fmt.Sprintf(`c.send(%d, 'reply', %d, { text: 'my order' })`, joined.Channel, authID), nil)
	m := nextCmd(t, auth, "reply")
	if number(t, m["from"]) != joined.ID || m["text"] != "my order" || number(t, m["channel"]) != authCh {
		t.Fatalf("authority on B got %v, want the page's direct reply", m)
	}

	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if m := nextCmd(t, auth, "LEFT"); number(t, m["id"]) != joined.ID {
		t.Fatalf("authority on B saw %v, want LEFT of the page %d", m, joined.ID)
	}
}
