package jsclient_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay/internal/relaytest"
	"github.com/relay-project/relay/relay/jsclient/browsertest"
)

// These tests run relay.js in chromium against a real relay on loopback.
// The relay's default configuration makes loopback clients authorities by
// IP, so the pages join with ipauth:false to be the ordinary browsers they
// would be in production; the Go side is the authority.

// world is a relay, a page server on another origin and a browser.
type world struct {
	t          *testing.T
	relay      *relaytest.Relay
	pages      *httptest.Server
	browser    *browsertest.Browser
	tokenCalls atomic.Int32
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t}
	w.browser = browsertest.Start(t)
	w.relay = relaytest.Start(t, relaytest.Config(t), "")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /blank.html", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(rw, `<!doctype html><meta charset="utf-8"><title>relay.js test</title><body><pre id="log"></pre></body>`)
	})
	// POST /token?mode=N mints a grant token for the page, as an
	// application backend would.
	mux.HandleFunc("POST /token", func(rw http.ResponseWriter, r *http.Request) {
		w.tokenCalls.Add(1)
		mode := 2
		fmt.Sscan(r.URL.Query().Get("mode"), &mode)
		tok, err := mint(r.Context(), w.relay.URL, r.URL.Query().Get("channel"), r.URL.Query().Get("protocol"), mode)
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadGateway)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		json.NewEncoder(rw).Encode(map[string]string{"token": tok})
	})
	w.pages = httptest.NewServer(mux)
	t.Cleanup(w.pages.Close)
	return w
}

// mint asks the relay for a grant token over a fresh authority connection
// (loopback is an authority by IP). It is safe to call from any goroutine.
func mint(ctx context.Context, relayURL, channel, protocol string, mode int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, relayURL, nil)
	if err != nil {
		return "", fmt.Errorf("mint: dial: %w", err)
	}
	defer ws.CloseNow()
	req, _ := json.Marshal(map[string]any{"cmd": "GRANT", "channel": channel, "protocol": protocol, "clientmode": mode, "extra": map[string]any{"by": "test"}})
	if err := ws.Write(ctx, websocket.MessageText, req); err != nil {
		return "", fmt.Errorf("mint: write: %w", err)
	}
	_, data, err := ws.Read(ctx)
	if err != nil {
		return "", fmt.Errorf("mint: read: %w", err)
	}
	var res struct {
		Cmd, Token, Errorcode string
	}
	if err := json.Unmarshal(data, &res); err != nil || res.Cmd != "GRANTED" {
		return "", fmt.Errorf("mint: relay answered %s", data)
	}
	ws.Close(websocket.StatusNormalClosure, "")
	return res.Token, nil
}

func (w *world) mint(channel, protocol string, mode int) string {
	w.t.Helper()
	tok, err := mint(context.Background(), w.relay.URL, channel, protocol, mode)
	if err != nil {
		w.t.Fatal(err)
	}
	return tok
}

// prelude records every SDK event of window.c in window.events.
const prelude = `
window.events = [];
window.record = (c, names) => names.forEach((n) => c.addEventListener(n, (d) => window.events.push({ event: n, detail: d === undefined ? null : d })));
`

// page opens a tab on the page server's origin with relay.js loaded from
// the relay as a classic script.
func (w *world) page(ctx context.Context) *browsertest.Page {
	w.t.Helper()
	p, err := w.browser.NewPage(ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	if err := p.Goto(ctx, w.pages.URL+"/blank.html"); err != nil {
		w.t.Fatal(err)
	}
	sdk := "http://" + w.relay.Addr + "/sdk/relay.js"
	load := fmt.Sprintf(`new Promise((resolve, reject) => {
		const s = document.createElement('script');
		s.src = %q; s.onload = () => resolve(typeof RelayClient); s.onerror = () => reject(new Error('relay.js did not load'));
		document.head.appendChild(s);
	})`, sdk)
	var typ string
	if err := p.Eval(ctx, load, &typ); err != nil || typ != "function" {
		w.t.Fatalf("loading %s: %v (RelayClient is %q)", sdk, err, typ)
	}
	w.eval(ctx, p, prelude, nil)
	return p
}

func (w *world) eval(ctx context.Context, p *browsertest.Page, js string, out any) {
	w.t.Helper()
	if err := p.Eval(ctx, js, out); err != nil {
		w.t.Fatalf("%v\npage logs: %v", err, p.Logs(ctx))
	}
}

func (w *world) waitFor(ctx context.Context, p *browsertest.Page, js string) {
	w.t.Helper()
	if err := p.WaitFor(ctx, js, 15*time.Second); err != nil {
		var events any
		_ = p.Eval(ctx, "window.events", &events)
		w.t.Fatalf("%v\nevents: %v\npage logs: %v", err, events, p.Logs(ctx))
	}
}

func (w *world) wsURL() string { return "ws://" + w.relay.Addr + "/" }

// authority joins channel as an authority from Go and returns the
// connection and its client id.
func authority(t *testing.T, url, channel, protocol string) (*relaytest.Client, int) {
	t.Helper()
	a := relaytest.Dial(t, url, nil)
	a.Send(map[string]any{"cmd": "JOIN", "channel": channel, "protocol": protocol})
	joined := a.NextMap()
	if joined["cmd"] != "JOINED" {
		t.Fatalf("authority join: %v", joined)
	}
	id, _ := joined["id"].(json.Number).Int64()
	return a, int(id)
}

// nextCmd reads frames until one has cmd, failing after the relaytest
// timeout.
func nextCmd(t *testing.T, c *relaytest.Client, cmd string) map[string]any {
	t.Helper()
	for {
		m := c.NextMap()
		if m["cmd"] == cmd {
			return m
		}
	}
}

func number(t *testing.T, v any) int {
	t.Helper()
	n, err := v.(json.Number).Int64()
	if err != nil {
		t.Fatalf("%v is not a number", v)
	}
	return int(n)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestBrowserJoinsWithTokenAndReceivesBroadcast(t *testing.T) {
	w := newWorld(t)
	ctx := testContext(t)
	auth, authID := authority(t, w.relay.URL, "news", "demo")
	tok := w.mint("news", "demo", 0)

	p := w.page(ctx)
	var joined struct {
		Channel int
		ID      int
		Clients map[string]struct {
			Auth bool
			Mode int
		}
		Info struct{ Mode int }
	}
	w.eval(ctx, p, fmt.Sprintf(`(async () => {
		window.c = new RelayClient(%q);
		record(c, ['message']);
		return await c.join('news', 'demo', { token: %q, ipauth: false });
	})()`, w.wsURL(), tok), &joined)
	if joined.Channel <= 0 || joined.ID <= 0 {
		t.Fatalf("join resolved with %+v", joined)
	}
	if joined.Info.Mode != 0 {
		t.Errorf("page joined with mode %d, want 0 (receive only, from the token)", joined.Info.Mode)
	}
	if a, ok := joined.Clients[fmt.Sprint(authID)]; !ok || !a.Auth {
		t.Errorf("members %+v do not list authority %d", joined.Clients, authID)
	}
	// The authority sees the page join, then broadcasts.
	if m := nextCmd(t, auth, "JOINED"); number(t, m["id"]) != joined.ID {
		t.Fatalf("authority saw %v, want the page's id %d", m, joined.ID)
	}
	auth.Send(map[string]any{"cmd": "headline", "channel": joined.Channel, "to": -1, "text": "relay ships"})

	w.waitFor(ctx, p, `events.some((e) => e.detail.cmd === 'headline')`)
	var got struct {
		From int
		Text string
	}
	w.eval(ctx, p, `events.find((e) => e.detail.cmd === 'headline').detail`, &got)
	if got.From != authID || got.Text != "relay ships" {
		t.Fatalf("page received %+v, want text %q from %d", got, "relay ships", authID)
	}
}

func TestBrowserTwoPagesChat(t *testing.T) {
	w := newWorld(t)
	ctx := testContext(t)
	pages := []*browsertest.Page{w.page(ctx), w.page(ctx)}
	ids := make([]int, 2)
	channels := make([]int, 2)
	for i, p := range pages {
		var j struct{ Channel, ID int }
		w.eval(ctx, p, fmt.Sprintf(`(async () => {
			window.c = new RelayClient(%q);
			record(c, ['message']);
			return await c.join('room', 'chat', { token: %q, ipauth: false });
		})()`, w.wsURL(), w.mint("room", "chat", 2)), &j)
		ids[i], channels[i] = j.ID, j.Channel
	}
	if channels[0] != channels[1] {
		t.Fatalf("pages are in channels %v, want one channel", channels)
	}

	// Page 0 broadcasts: the promise resolves with its own copy and page 1 receives it.
	var echo struct {
		From int
		Text string
	}
	w.eval(ctx, pages[0], fmt.Sprintf(`c.broadcast(%d, 'chat', { text: 'hi all' })`, channels[0]), &echo)
	if echo.From != ids[0] || echo.Text != "hi all" {
		t.Errorf("broadcast resolved with %+v", echo)
	}
	w.waitFor(ctx, pages[1], `events.some((e) => e.detail.cmd === 'chat' && e.detail.text === 'hi all')`)

	// Page 1 answers page 0 directly.
	w.eval(ctx, pages[1], fmt.Sprintf(`c.send(%d, 'chat', %d, { text: 'hi you' })`, channels[1], ids[0]), nil)
	w.waitFor(ctx, pages[0], `events.some((e) => e.detail.cmd === 'chat' && e.detail.text === 'hi you')`)
	var from int
	w.eval(ctx, pages[0], `events.find((e) => e.detail.text === 'hi you').detail.from`, &from)
	if from != ids[1] {
		t.Errorf("direct message from %d, want page 1 (%d)", from, ids[1])
	}
	// The direct message went to page 0 only.
	var count int
	w.eval(ctx, pages[1], `events.filter((e) => e.detail.text === 'hi you').length`, &count)
	if count != 0 {
		t.Errorf("page 1 received its own direct message %d times", count)
	}
}

func TestBrowserBadTokenIsAccessDenied(t *testing.T) {
	w := newWorld(t)
	ctx := testContext(t)
	p := w.page(ctx)
	var res struct {
		Code, Name   string
		IsRelayError bool
		ErrorEvent   struct{ Errorcode string }
	}
	w.eval(ctx, p, fmt.Sprintf(`(async () => {
		window.c = new RelayClient(%q);
		record(c, ['error']);
		try {
			await c.join('news', 'demo', { token: 'not-a-real-token', ipauth: false });
			return { code: 'joined?!' };
		} catch (err) {
			document.getElementById('log').textContent = 'could not join: ' + err.code;
			return { Code: err.code, Name: err.name, IsRelayError: err instanceof RelayError,
				ErrorEvent: events.find((e) => e.event === 'error').detail };
		}
	})()`, w.wsURL()), &res)
	if res.Code != "access_denied" || res.Name != "RelayError" || !res.IsRelayError {
		t.Fatalf("join with a bad token rejected with %+v, want RelayError access_denied", res)
	}
	if res.ErrorEvent.Errorcode != "access_denied" {
		t.Errorf("error event %+v, want errorcode access_denied", res.ErrorEvent)
	}
	var shown string
	w.eval(ctx, p, `document.getElementById('log').textContent`, &shown)
	if shown != "could not join: access_denied" {
		t.Errorf("page shows %q", shown)
	}
	// The client stays usable: a good token joins on the same connection.
	var ch int
	w.eval(ctx, p, fmt.Sprintf(`c.join('news', 'demo', { token: %q, ipauth: false }).then((j) => j.channel)`, w.mint("news", "demo", 0)), &ch)
	if ch <= 0 {
		t.Fatalf("join after a refused one resolved with channel %d", ch)
	}
}

func TestBrowserRejoinsWithGrantTokenAfterNetworkDrop(t *testing.T) {
	w := newWorld(t)
	ctx := testContext(t)
	auth, _ := authority(t, w.relay.URL, "ops", "demo")
	p := w.page(ctx)
	var first struct{ Channel, ID int }
	w.eval(ctx, p, fmt.Sprintf(`(async () => {
		window.c = new RelayClient(%q, { minDelay: 400 });
		record(c, ['disconnect', 'restored', 'rejoined', 'lost', 'message']);
		return await c.join('ops', 'demo', { token: %q, ipauth: false });
	})()`, w.wsURL(), w.mint("ops", "demo", 1)), &first)
	nextCmd(t, auth, "JOINED")

	// Drop the socket as a network failure would; the relay sees the member
	// go and makes its grant token valid again for the rejoin window.
	w.eval(ctx, p, `c._ws.close(4000, 'network drop'); null`, nil)
	nextCmd(t, auth, "LEFT")
	w.waitFor(ctx, p, `events.some((e) => e.event === 'restored')`)
	var restored struct {
		Rejoined []struct {
			Channel, Previous     int
			Channelname, Protocol string
		}
		Lost []any
	}
	w.eval(ctx, p, `events.find((e) => e.event === 'restored').detail`, &restored)
	if len(restored.Rejoined) != 1 || len(restored.Lost) != 0 || restored.Rejoined[0].Channelname != "ops" || restored.Rejoined[0].Previous != first.Channel {
		t.Fatalf("restored %+v, want ops rejoined from channel %d and nothing lost", restored, first.Channel)
	}
	// The authority sees the page back, and the page can send to it again (mode 1).
	again := nextCmd(t, auth, "JOINED")
	var newID int
	w.eval(ctx, p, `c.id`, &newID)
	if number(t, again["id"]) != newID {
		t.Fatalf("authority saw %v join, want the page's new id %d", again, newID)
	}
	w.eval(ctx, p, fmt.Sprintf(`c.send(%d, 'status', c.GetRandomAuthClientID(%d), { ok: true })`, restored.Rejoined[0].Channel, restored.Rejoined[0].Channel), nil)
	if m := nextCmd(t, auth, "status"); number(t, m["from"]) != newID {
		t.Fatalf("authority got %v, want it from %d", m, newID)
	}
}

func TestBrowserReconnectsAfterRelayRestart(t *testing.T) {
	w := newWorld(t)
	ctx := testContext(t)
	addr := w.relay.Addr
	p := w.page(ctx)
	var first struct{ Channel int }
	w.eval(ctx, p, fmt.Sprintf(`(async () => {
		window.getToken = (name, proto) => fetch('/token?mode=2&channel=' + name + '&protocol=' + proto, { method: 'POST' })
			.then((r) => r.json()).then((j) => j.token);
		window.c = new RelayClient(%q, { maxQueue: 2 });
		record(c, ['connect', 'disconnect', 'restored', 'rejoined', 'lost', 'message']);
		return await c.join('jobs', 'demo', { getToken, ipauth: false });
	})()`, w.wsURL()), &first)
	if n := w.tokenCalls.Load(); n != 1 {
		t.Fatalf("page asked for %d tokens to join, want 1", n)
	}

	// Restart: Shutdown closes every client with 1012; a new relay takes
	// the same port. It knows nothing of the old grant token.
	w.relay.Stop(t)
	w.waitFor(ctx, p, `events.some((e) => e.event === 'disconnect' && e.detail.code === 1012)`)
	var delay float64
	w.eval(ctx, p, `events.find((e) => e.event === 'disconnect').detail.delay`, &delay)
	if delay < 0 || delay >= 250 {
		t.Errorf("after close code 1012 the first retry waits %v ms, want a prompt one (under restartDelay, 250 ms)", delay)
	}
	// While the relay is down, two messages queue and a third is refused.
	w.eval(ctx, p, fmt.Sprintf(`(() => {
		window.queued = [c.broadcast(%[1]d, 'note', { n: 1 }), c.broadcast(%[1]d, 'note', { n: 2 })];
		return c.state;
	})()`, first.Channel), nil)
	var refused string
	w.eval(ctx, p, fmt.Sprintf(`c.broadcast(%d, 'note', { n: 3 }).then(() => 'sent?!', (err) => err.code)`, first.Channel), &refused)
	if refused != "queue_full" {
		t.Errorf("third message while disconnected: %q, want queue_full", refused)
	}

	w.relay = relaytest.Start(t, relaytest.Config(t), addr)
	w.waitFor(ctx, p, `events.some((e) => e.event === 'restored')`)
	var restored struct {
		Rejoined []struct {
			Channel     int
			Channelname string
		}
		Lost []any
	}
	w.eval(ctx, p, `events.find((e) => e.event === 'restored').detail`, &restored)
	if len(restored.Rejoined) != 1 || restored.Rejoined[0].Channelname != "jobs" || len(restored.Lost) != 0 {
		t.Fatalf("restored %+v, want jobs rejoined and nothing lost", restored)
	}
	if n := w.tokenCalls.Load(); n != 2 {
		t.Errorf("page asked for %d tokens in all, want 2 (the new relay refuses the old one, getToken gets a fresh one)", n)
	}
	var reconnect bool
	w.eval(ctx, p, `events.filter((e) => e.event === 'connect').pop().detail.reconnect`, &reconnect)
	if !reconnect {
		t.Errorf("second connect event does not say reconnect")
	}

	// The queued messages went out on the new channel, in order.
	var ns []int
	w.eval(ctx, p, `Promise.all(queued).then((echoes) => echoes.map((e) => e.n))`, &ns)
	if fmt.Sprint(ns) != "[1 2]" {
		t.Errorf("queued broadcasts echoed %v, want [1 2]", ns)
	}
	// And the page receives on the rejoined channel.
	auth, _ := authority(t, w.relay.URL, "jobs", "demo")
	auth.Send(map[string]any{"cmd": "progress", "channel": restored.Rejoined[0].Channel, "to": -1, "percent": 50})
	w.waitFor(ctx, p, `events.some((e) => e.event === 'message' && e.detail.cmd === 'progress' && e.detail.percent === 50)`)
}

func TestBrowserLegacyDRCClientAPI(t *testing.T) {
	w := newWorld(t)
	ctx := testContext(t)
	auth, authID := authority(t, w.relay.URL, "legacy", "drc")
	p := w.page(ctx)
	tok := w.mint("legacy", "drc", 1)
	// The page is written as for CubicleSoft's drc_client.js.
	w.eval(ctx, p, fmt.Sprintf(`(() => {
		window.drc = new DRCClient(%q);
		record(drc, ['connect', 'error', 'joined', 'left', 'message', 'unhandled', 'disconnect']);
		drc.JoinChannel('legacy', 'drc', %q, false);
		return null;
	})()`, w.wsURL(), tok), nil)
	w.waitFor(ctx, p, `events.some((e) => e.event === 'joined' && e.detail.channelname === 'legacy')`)
	var state struct {
		Connected bool
		Channel   int
		ClientID  int
		Channels  []string
		HasAuth   bool
		RandAuth  string
		RandType  string
	}
	w.eval(ctx, p, `(() => {
		const j = events.find((e) => e.event === 'joined').detail;
		const r = drc.GetRandomAuthClientID(j.channel);
		return {
			Connected: events.some((e) => e.event === 'connect'),
			Channel: j.channel,
			ClientID: drc.GetClientID(),
			Channels: Object.keys(drc.GetChannels()),
			HasAuth: Object.values(drc.GetChannel(j.channel).clients).some((c) => c.auth),
			RandAuth: r, RandType: typeof r,
		};
	})()`, &state)
	if !state.Connected || state.ClientID <= 0 || len(state.Channels) != 1 || state.Channels[0] != fmt.Sprint(state.Channel) || !state.HasAuth {
		t.Fatalf("after JoinChannel: %+v", state)
	}
	if state.RandAuth != fmt.Sprint(authID) || state.RandType != "string" {
		t.Errorf("GetRandomAuthClientID = %q (%s), want %q as a string like drc_client.js", state.RandAuth, state.RandType, fmt.Sprint(authID))
	}
	if m := nextCmd(t, auth, "JOINED"); number(t, m["id"]) != state.ClientID {
		t.Fatalf("authority saw %v", m)
	}

	// SendCommandToAuthClients reaches the authority with the options merged in.
	w.eval(ctx, p, fmt.Sprintf(`drc.SendCommandToAuthClients(%d, 'hello', { greeting: 'hi', to: 99 }); null`, state.Channel), nil)
	m := nextCmd(t, auth, "hello")
	if number(t, m["from"]) != state.ClientID || m["greeting"] != "hi" {
		t.Errorf("authority got %v", m)
	}
	// SendCommand to a member, and a message from the authority arrives as 'message'.
	w.eval(ctx, p, fmt.Sprintf(`drc.SendCommand(%d, 'direct', %d, { n: 7 }); null`, state.Channel, authID), nil)
	if m := nextCmd(t, auth, "direct"); number(t, m["n"]) != 7 {
		t.Errorf("authority got %v", m)
	}
	auth.Send(map[string]any{"cmd": "welcome", "channel": state.Channel, "to": state.ClientID})
	w.waitFor(ctx, p, `events.some((e) => e.event === 'message' && e.detail.cmd === 'welcome')`)
	// SetExtra as a non-authority is refused: an 'error' event.
	w.eval(ctx, p, fmt.Sprintf(`drc.SetExtra(%d, %d, { x: 1 }); null`, state.Channel, authID), nil)
	w.waitFor(ctx, p, `events.some((e) => e.event === 'error' && e.detail.errorcode === 'access_denied')`)
	// GRANTED has no channel: drc_client.js reports it as 'unhandled' (the
	// page is on loopback, an authority by IP for GRANT).
	w.eval(ctx, p, `drc.CreateToken(null, 'other', 'drc', 0, { who: 'x' }); null`, nil)
	w.waitFor(ctx, p, `events.some((e) => e.event === 'unhandled' && e.detail.cmd === 'GRANTED' && e.detail.channelname === 'other')`)
	// LeaveChannel: 'left' for the page itself, and the channel is gone.
	w.eval(ctx, p, fmt.Sprintf(`drc.LeaveChannel(%d); null`, state.Channel), nil)
	w.waitFor(ctx, p, fmt.Sprintf(`events.some((e) => e.event === 'left' && e.detail.id === %d) && drc.GetChannel(%d) === undefined`, state.ClientID, state.Channel))
	nextCmd(t, auth, "LEFT")
	// removeEventListener works; 'disconnect' fires when the relay goes away.
	w.relay.Stop(t)
	w.waitFor(ctx, p, `events.some((e) => e.event === 'disconnect')`)
}

func TestBrowserBackoffGrowsWithJitter(t *testing.T) {
	w := newWorld(t)
	ctx := testContext(t)
	// A port with nothing listening: every attempt fails at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "ws://" + ln.Addr().String() + "/"
	ln.Close()
	p := w.page(ctx)
	w.eval(ctx, p, fmt.Sprintf(`(() => {
		window.c = new RelayClient(%q, { minDelay: 40, maxDelay: 320, factor: 2 });
		record(c, ['disconnect', 'connect']);
		return null;
	})()`, dead), nil)
	w.waitFor(ctx, p, `events.filter((e) => e.event === 'disconnect').length >= 6`)
	var delays []float64
	w.eval(ctx, p, `(() => { c.close(); return events.filter((e) => e.event === 'disconnect' && e.detail.reconnect).slice(0, 6).map((e) => e.detail.delay); })()`, &delays)
	// Attempt n waits between half and all of min(320, 40*2^n) ms.
	for i, d := range delays {
		ceil := math.Min(320, 40*math.Pow(2, float64(i)))
		if d < ceil/2-1 || d > ceil {
			t.Errorf("attempt %d waited %v ms, want %v..%v", i, d, ceil/2, ceil)
		}
	}
	if len(delays) != 6 {
		t.Fatalf("delays %v", delays)
	}
	var connected bool
	w.eval(ctx, p, `events.some((e) => e.event === 'connect')`, &connected)
	if connected {
		t.Errorf("connected to a closed port?")
	}
}

// TestBrowserLegacyPageThatJoinsOnConnect covers pages written for
// drc_client.js, which lost its channels on every reconnect: such pages
// call JoinChannel from their 'connect' listener. The automatic rejoin has
// already spent the token by then, so the SDK must not send it again.
func TestBrowserLegacyPageThatJoinsOnConnect(t *testing.T) {
	w := newWorld(t)
	ctx := testContext(t)
	tok := w.mint("board", "drc", 2)
	p := w.page(ctx)
	w.eval(ctx, p, fmt.Sprintf(`(() => {
		window.drc = new DRCClient(%q);
		record(drc, ['connect', 'joined', 'error', 'restored']);
		drc.addEventListener('connect', () => drc.JoinChannel('board', 'drc', %q, false));
		return null;
	})()`, w.wsURL(), tok), nil)
	w.waitFor(ctx, p, `events.some((e) => e.event === 'joined' && e.detail.channelname === 'board')`)
	w.eval(ctx, p, `drc._ws.close(4000, 'network drop'); null`, nil)
	w.waitFor(ctx, p, `events.some((e) => e.event === 'restored')`)
	// Let any duplicate JOIN come back before counting.
	time.Sleep(300 * time.Millisecond)
	var got struct {
		Joined, Errors, Connects int
		InChannel                bool
	}
	w.eval(ctx, p, `({
		Joined: events.filter((e) => e.event === 'joined' && e.detail.channelname === 'board').length,
		Errors: events.filter((e) => e.event === 'error').length,
		Connects: events.filter((e) => e.event === 'connect').length,
		InChannel: Object.values(drc.GetChannels()).some((c) => c.channelname === 'board'),
	})`, &got)
	if got.Connects != 2 || got.Joined != 2 || got.Errors != 0 || !got.InChannel {
		t.Fatalf("after a reconnect: %+v, want 2 connects, 2 joined events (one per connection), no error, still in the channel", got)
	}
}

// TestBrowserPromiseAPIAsAuthority uses grant, setExtra and leave from a
// page that is an authority (by loopback address, the relay's default).
func TestBrowserPromiseAPIAsAuthority(t *testing.T) {
	w := newWorld(t)
	ctx := testContext(t)
	owner, guest := w.page(ctx), w.page(ctx)
	var granted struct {
		Token, Channelname, Protocol string
		Channel                      int
	}
	w.eval(ctx, owner, fmt.Sprintf(`(async () => {
		window.c = new RelayClient(%q);
		record(c, ['joined', 'message']);
		const j = await c.join('desk', 'support');
		const g = await c.grant('desk', 'support', { clientmode: 1, extra: { name: 'guest' } });
		return { ...g, Channel: j.channel };
	})()`, w.wsURL()), &granted)
	if granted.Token == "" || granted.Channelname != "desk" || granted.Protocol != "support" {
		t.Fatalf("grant resolved with %+v", granted)
	}
	var guestJoin struct {
		ID   int
		Info struct {
			Mode  int
			Extra struct{ Name string }
		}
	}
	w.eval(ctx, guest, fmt.Sprintf(`(async () => {
		window.c = new RelayClient(%q);
		record(c, ['message', 'left']);
		return await c.join('desk', 'support', { token: %q, ipauth: false });
	})()`, w.wsURL(), granted.Token), &guestJoin)
	if guestJoin.Info.Mode != 1 || guestJoin.Info.Extra.Name != "guest" {
		t.Fatalf("guest joined as %+v, want mode 1 with the granted extra", guestJoin.Info)
	}
	w.waitFor(ctx, owner, fmt.Sprintf(`events.some((e) => e.event === 'joined' && e.detail.id === %d)`, guestJoin.ID))

	var extra struct {
		Cmd   string
		ID    int
		Extra struct{ Name string }
	}
	w.eval(ctx, owner, fmt.Sprintf(`c.setExtra(%d, %d, { name: 'Ada' })`, granted.Channel, guestJoin.ID), &extra)
	if extra.Cmd != "SET_EXTRA" || extra.ID != guestJoin.ID || extra.Extra.Name != "Ada" {
		t.Fatalf("setExtra resolved with %+v", extra)
	}
	var stored string
	w.eval(ctx, owner, fmt.Sprintf(`c.GetChannel(%d).clients[%d].extra.name`, granted.Channel, guestJoin.ID), &stored)
	if stored != "Ada" {
		t.Errorf("owner's member list has extra.name %q after SET_EXTRA, want Ada", stored)
	}
	// The owner leaves; the guest is told.
	var ownerID int
	// (As a string, the way a page gets it from Object.keys(GetChannels()).)
	w.eval(ctx, owner, fmt.Sprintf(`c.leave('%d').then(() => c.GetChannel(%d) === undefined ? c.id : -1)`, granted.Channel, granted.Channel), &ownerID)
	if ownerID <= 0 {
		t.Fatalf("after leave() the owner still lists the channel")
	}
	w.waitFor(ctx, guest, fmt.Sprintf(`events.some((e) => e.event === 'left' && e.detail.id === %d)`, ownerID))
}

// TestBrowserErrorsReachTheRightPromise sends several requests at once;
// DRC errors carry no request id, so the SDK must pair each answer with the
// request that caused it.
func TestBrowserErrorsReachTheRightPromise(t *testing.T) {
	w := newWorld(t)
	ctx := testContext(t)
	p := w.page(ctx)
	var results []string
	w.eval(ctx, p, fmt.Sprintf(`(async () => {
		window.c = new RelayClient(%q);
		const listen = await c.join('feed', 'demo', { token: %q, ipauth: false });
		const settled = await Promise.allSettled([
			c.broadcast(listen.channel, 'shout', { text: 'receive-only pages may not send' }),
			c.join('chat', 'demo', { token: 'forged', ipauth: false }),
			c.join('chat', 'demo', { token: %q, ipauth: false }),
			c.leave(987654),
			c.send(listen.channel, 'direct', 1),
		]);
		return settled.map((s) => s.status === 'fulfilled' ? 'ok' + (s.value && s.value.channelname ? ':' + s.value.channelname : '') : s.reason.code);
	})()`, w.wsURL(), w.mint("feed", "demo", 0), w.mint("chat", "demo", 2)), &results)
	want := "access_denied access_denied ok:chat invalid_channel access_denied"
	if got := strings.Join(results, " "); got != want {
		t.Fatalf("results %q, want %q", got, want)
	}
}
