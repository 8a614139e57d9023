package client_test

// Every method of the Go client against a real relay on loopback.
// 127.0.0.1 is the authority address; guests dial from 127.0.0.2.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/client"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// TestMain fails the run if goroutines outlive the tests.
func TestMain(m *testing.M) { relaytest.Main(m) }

func startRelay(t *testing.T, mutate func(*relay.Config)) *relaytest.Relay {
	t.Helper()
	cfg := relaytest.Config(t)
	cfg.AuthorityIPs = []string{"127.0.0.1"}
	if mutate != nil {
		mutate(&cfg)
	}
	return relaytest.Start(t, cfg, "")
}

// from returns an HTTP client whose connections come from local.
func from(t *testing.T, local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func dial(t *testing.T, r *relaytest.Relay, local string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, r.URL, &client.DialOptions{HTTPClient: from(t, local)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, code client.Code) {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("want relay error %s, got %v", code, err)
	}
}

func TestClientMethods(t *testing.T) {
	r := startRelay(t, nil)
	ctx := ctx5(t)
	backend := dial(t, r, "127.0.0.1")
	browser := dial(t, r, "127.0.0.2")

	// CreateToken: guests may not, authorities may.
	_, err := browser.CreateToken(ctx, "room", "chat", nil)
	wantCode(t, err, client.CodeAccessDenied)
	if !errors.Is(err, &client.Error{Code: client.CodeAccessDenied}) {
		t.Fatal("errors.Is does not match the code")
	}
	_, err = backend.CreateToken(ctx, "room", "chat", &client.TokenOptions{ClientMode: 7})
	wantCode(t, err, client.CodeMissingInvalidClientMode)
	grant, err := backend.CreateToken(ctx, "room", "chat", &client.TokenOptions{ClientMode: client.SendToAny, Extra: map[string]any{"name": "bob"}})
	if err != nil || grant.Token == "" {
		t.Fatalf("create token: %v %+v", err, grant)
	}

	// Join: errors, then success with the grant.
	_, err = browser.Join(ctx, "room", "chat", &client.JoinOptions{Token: "bogus"})
	wantCode(t, err, client.CodeAccessDenied)
	_, err = browser.Join(ctx, "", "chat", nil)
	wantCode(t, err, client.CodeMissingInvalidChannel)
	ch, err := browser.Join(ctx, "room", "chat", &client.JoinOptions{Token: grant.Token})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Name != "room" || ch.Protocol != "chat" || ch.Self.Auth || ch.Self.Mode != client.SendToAny ||
		ch.Self.Extra["name"] != "bob" || len(ch.Members) != 1 || browser.ID() != ch.Self.ID {
		t.Fatalf("browser's channel %+v", ch)
	}
	n, browserID := ch.Number, ch.Self.ID

	// The backend joins as an authority and sees the browser; the browser
	// is told.
	bch, err := backend.Join(ctx, "room", "chat", nil)
	if err != nil {
		t.Fatal(err)
	}
	if bch.Number != n || !bch.Self.Auth || bch.Self.Extra != nil || len(bch.Members) != 2 {
		t.Fatalf("backend's channel %+v", bch)
	}
	backendID := bch.Self.ID
	ev, err := browser.WaitFor(ctx, func(ev client.Event) bool { _, ok := ev.(*client.JoinedEvent); return ok })
	if err != nil || ev.(*client.JoinedEvent).Member.ID != backendID || !ev.(*client.JoinedEvent).Member.Auth {
		t.Fatalf("joined event %+v %v", ev, err)
	}
	if id, ok := browser.RandomAuthority(n); !ok || id != backendID {
		t.Fatalf("random authority %d %v", id, ok)
	}
	if got := browser.Channels(); len(got) != 1 || len(got[0].Members) != 2 {
		t.Fatalf("channels %+v", got)
	}

	// SetExtra: authority only; the browser is told and its view updated.
	wantCode(t, browser.SetExtra(ctx, n, browserID, map[string]any{"x": 1}), client.CodeAccessDenied)
	wantCode(t, backend.SetExtra(ctx, n, 999999, map[string]any{"x": 1}), client.CodeInvalidID)
	if err := backend.SetExtra(ctx, n, browserID, map[string]any{"name": "robert"}); err != nil {
		t.Fatal(err)
	}
	ev, err = browser.WaitFor(ctx, func(ev client.Event) bool { _, ok := ev.(*client.ExtraEvent); return ok })
	if err != nil || ev.(*client.ExtraEvent).Extra["name"] != "robert" {
		t.Fatalf("extra event %+v %v", ev, err)
	}
	if got := browser.Channel(n).Self.Extra["name"]; got != "robert" {
		t.Fatalf("browser's own extra %v", got)
	}

	// Send (direct), Request and Broadcast.
	if err := browser.Send(ctx, n, backendID, "hello", map[string]any{"text": "hi"}); err != nil {
		t.Fatal(err)
	}
	m, err := backend.WaitMessage(ctx, n, "hello")
	if err != nil || m.From != browserID || string(m.Fields["text"]) != `"hi"` || m.Replayed {
		t.Fatalf("hello %+v %v", m, err)
	}
	go func() {
		ping, err := browser.WaitMessage(ctx, n, "ping")
		if err == nil {
			_ = browser.Send(ctx, n, ping.From, "pong", map[string]any{"seq": 1})
		}
	}()
	pong, err := backend.Request(ctx, n, browserID, "ping", nil, "pong")
	if err != nil || pong.From != browserID {
		t.Fatalf("request: %+v %v", pong, err)
	}
	if err := backend.Broadcast(ctx, n, "news", struct {
		Title string `json:"title"`
	}{"relay"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{backend, browser} {
		m, err := c.WaitMessage(ctx, n, "news")
		var body struct{ Title string }
		if err != nil || m.Decode(&body) != nil || body.Title != "relay" || m.From != backendID {
			t.Fatalf("news: %+v %v", m, err)
		}
	}
	if err := backend.SendToAuthorities(ctx, n, "note", nil); err != nil {
		t.Fatal(err)
	}
	if m, err := backend.WaitMessage(ctx, n, "note"); err != nil || m.From != backendID {
		t.Fatalf("note to authorities: %+v %v", m, err)
	}

	// A refused send arrives as an ErrorEvent with the code.
	if err := browser.Send(ctx, n, 999999, "hello", nil); err != nil {
		t.Fatal(err)
	}
	ev, err = browser.WaitFor(ctx, func(ev client.Event) bool { _, ok := ev.(*client.ErrorEvent); return ok })
	if err != nil || ev.(*client.ErrorEvent).Err.Code != client.CodeInvalidTo || ev.ChannelNumber() != n {
		t.Fatalf("error event %+v %v", ev, err)
	}

	// Leave: the other side is told; the channel is gone from the view.
	if err := browser.Leave(ctx, n); err != nil {
		t.Fatal(err)
	}
	if browser.Channel(n) != nil {
		t.Fatal("channel still in the browser's view")
	}
	ev, err = backend.WaitFor(ctx, func(ev client.Event) bool { _, ok := ev.(*client.LeftEvent); return ok })
	if err != nil || ev.(*client.LeftEvent).ID != browserID || len(backend.Channel(n).Members) != 1 {
		t.Fatalf("left event %+v %v", ev, err)
	}
	wantCode(t, browser.Leave(ctx, n), client.CodeInvalidChannel)
	wantCode(t, browser.Send(ctx, n, backendID, "x", nil), client.CodeInvalidChannel)
}

func TestClientReceiveOnly(t *testing.T) {
	r := startRelay(t, nil)
	ctx := ctx5(t)
	backend := dial(t, r, "127.0.0.1")
	viewer := dial(t, r, "127.0.0.2")
	g, err := backend.CreateToken(ctx, "board", "dash", nil) // mode 0 by default
	if err != nil {
		t.Fatal(err)
	}
	ch, err := viewer.Join(ctx, "board", "dash", &client.JoinOptions{Token: g.Token})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Self.Mode != client.RecvOnly {
		t.Fatalf("mode %v", ch.Self.Mode)
	}
	wantCode(t, viewer.Broadcast(ctx, ch.Number, "x", nil), client.CodeAccessDenied)
	// An authority joining with ipauth off is an ordinary guest.
	_, err = backend.Join(ctx, "other", "dash", &client.JoinOptions{NoIPAuth: true})
	wantCode(t, err, client.CodeAccessDenied)
}

func TestClientContextAndClose(t *testing.T) {
	r := startRelay(t, nil)
	c := dial(t, r, "127.0.0.1")

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Join(canceled, "a", "b", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("join with canceled ctx: %v", err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	if _, err := c.WaitMessage(short, 1, "never"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait: %v", err)
	}
	// Still usable afterwards.
	ctx := ctx5(t)
	ch, err := c.Join(ctx, "a", "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The relay going away ends the client: waits return, Done closes.
	waitErr := make(chan error, 1)
	go func() {
		_, err := c.WaitMessage(ctx, ch.Number, "never")
		waitErr <- err
	}()
	r.Stop(t)
	select {
	case <-c.Done():
	case <-ctx.Done():
		t.Fatal("client did not notice the relay closing")
	}
	if err := <-waitErr; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("wait during shutdown: %v", err)
	}
	if c.Err() == nil {
		t.Fatal("Err is nil after the connection ended")
	}
	if _, err := c.CreateToken(ctx, "a", "b", nil); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("call after end: %v", err)
	}
}

func TestClientConcurrentUse(t *testing.T) {
	r := startRelay(t, nil)
	ctx := ctx5(t)
	c := dial(t, r, "127.0.0.1")
	ch, err := c.Join(ctx, "busy", "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				g, err := c.CreateToken(ctx, fmt.Sprint("ch", i), "p", nil)
				if err != nil || g.Channel != fmt.Sprint("ch", i) {
					errs <- fmt.Errorf("create token %d: %v %+v", i, err, g)
					return
				}
				if err := c.Broadcast(ctx, ch.Number, "tick", map[string]any{"i": i, "j": j}); err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k := 0; k < 80; k++ {
		if _, err := c.WaitMessage(ctx, ch.Number, "tick"); err != nil {
			t.Fatalf("tick %d: %v", k, err)
		}
	}
}

func TestAPIClient(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) { c.AuthorityTokens = []string{"s3cret#jobs"} })
	ctx := ctx5(t)
	// A backend on another host: a static token, not an authority address.
	api, err := client.NewAPI(r.URL, &client.APIOptions{Token: "s3cret", HTTPClient: from(t, "127.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.CreateToken(ctx, client.TokenRequest{Channel: "job-1", Protocol: "jobs", Extra: map[string]any{"user": "ann"}, Lifetime: 10})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Token == "" || tok.Lifetime != 10 || tok.ChannelName != "job-1" || time.Until(tok.Expires) > 11*time.Second {
		t.Fatalf("token %+v", tok)
	}
	// The job ends before the browser joins: retained.
	pub, err := api.Publish(ctx, client.PublishRequest{Channel: "job-1", Protocol: "jobs", Cmd: "ready", Fields: map[string]any{"url": "/r/1"}, Retain: 60})
	if err != nil || pub.Delivered != 0 || !pub.Retained || pub.RetainedUntil == nil {
		t.Fatalf("publish %+v %v", pub, err)
	}
	browser := dial(t, r, "127.0.0.2")
	ch, err := browser.Join(ctx, "job-1", "jobs", &client.JoinOptions{Token: tok.Token})
	if err != nil {
		t.Fatal(err)
	}
	m, err := browser.WaitMessage(ctx, ch.Number, "ready")
	if err != nil || !m.Replayed || m.From != 0 || string(m.Fields["url"]) != `"/r/1"` {
		t.Fatalf("replayed %+v %v", m, err)
	}
	// Live publish, direct.
	to := ch.Self.ID
	pub, err = api.Publish(ctx, client.PublishRequest{Channel: "job-1", Protocol: "jobs", Cmd: "progress", To: &to, Fields: map[string]any{"pct": 50}})
	if err != nil || pub.Delivered != 1 || pub.Channel != ch.Number {
		t.Fatalf("publish %+v %v", pub, err)
	}
	if m, err := browser.WaitMessage(ctx, ch.Number, "progress"); err != nil || m.Replayed {
		t.Fatalf("progress %+v %v", m, err)
	}
	pres, err := api.Presence(ctx, "job-1", "jobs")
	if err != nil || pres.Channel != ch.Number || len(pres.Members) != 1 || pres.Members[0].ID != to || pres.Members[0].Extra["user"] != "ann" {
		t.Fatalf("presence %+v %v", pres, err)
	}

	// Errors carry the code and the HTTP status.
	_, err = api.CreateToken(ctx, client.TokenRequest{Channel: "job-1", Protocol: "chat"})
	var e *client.Error
	if !errors.As(err, &e) || e.Code != client.CodeAccessDenied || e.HTTPStatus != 403 {
		t.Fatalf("token for another protocol: %v", err)
	}
	anon, _ := client.NewAPI(r.URL, &client.APIOptions{HTTPClient: from(t, "127.0.0.2")})
	_, err = anon.Presence(ctx, "job-1", "jobs")
	if !errors.As(err, &e) || e.Code != client.CodeAccessDenied || e.HTTPStatus != 401 {
		t.Fatalf("anonymous: %v", err)
	}
	_, err = api.CreateToken(ctx, client.TokenRequest{Channel: "job-1", Protocol: "jobs", ClientMode: 5})
	if !errors.As(err, &e) || e.Code != client.CodeMissingInvalidClientMode || e.HTTPStatus != 400 {
		t.Fatalf("bad mode: %v", err)
	}
	_, err = api.Publish(ctx, client.PublishRequest{Channel: "job-1", Protocol: "jobs", Cmd: "x", Retain: 999999})
	wantCode(t, err, client.CodeMissingInvalidRetain)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := api.Presence(canceled, "job-1", "jobs"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled presence: %v", err)
	}
}

func TestClientEventQueueBound(t *testing.T) {
	r := startRelay(t, nil)
	ctx := ctx5(t)
	c, err := client.Dial(ctx, r.URL, &client.DialOptions{MaxQueuedEvents: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Join(ctx, "q", "p", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := c.Broadcast(ctx, ch.Number, "n", map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	// A request answered after the five broadcasts proves they arrived.
	if _, err := c.CreateToken(ctx, "q", "p", nil); err != nil {
		t.Fatal(err)
	}
	if c.Dropped() != 3 {
		t.Fatalf("dropped %d, want 3", c.Dropped())
	}
	for _, want := range []string{"3", "4"} {
		m, err := c.WaitMessage(ctx, ch.Number, "n")
		if err != nil || string(m.Fields["i"]) != want {
			t.Fatalf("kept event: %+v %v, want i=%s", m, err, want)
		}
	}
	// Events is closed once the client is closed.
	events := c.Events()
	c.Close()
	for range events {
	}
}
