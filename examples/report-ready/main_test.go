package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/client"
)

// logTap collects the example's log lines.
type logTap struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logTap) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logTap) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

// start runs a real relay and the example against it, both on loopback.
// With release nil every job ends at once, and WebSocket handshakes wait
// until it has published: the browser is sure to be late. Otherwise a job
// ends when the test sends on release.
func start(t *testing.T, release chan struct{}) (relayURL, appURL string, logs *logTap) {
	t.Helper()
	logs = &logTap{}
	cfg := relay.DefaultConfig()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.AuthorityIPs = []string{"127.0.0.1"}
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	handler := http.Handler(srv)
	if release == nil {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Not waitLog: this runs outside the test's goroutine.
			for deadline := time.Now().Add(5 * time.Second); r.Header.Get("Upgrade") != "" && !logs.has("job done") && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			srv.ServeHTTP(w, r)
		})
	}
	rs := httptest.NewServer(handler)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		rs.Close()
	})
	relayURL = "ws" + strings.TrimPrefix(rs.URL, "http") + "/"

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	work := func(string) {}
	if release != nil {
		work = func(string) {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, ln, Config{RelayURL: relayURL, Work: work, Retain: time.Minute, Grace: 300 * time.Millisecond}, slog.New(slog.NewTextHandler(logs, nil)))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return relayURL, "http://" + ln.Addr().String(), logs
}

// startReport posts the form and returns the page's job configuration.
func startReport(t *testing.T, appURL string) PageConfig {
	t.Helper()
	resp, err := http.PostForm(appURL+"/reports", url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /reports: %d %s", resp.StatusCode, body)
	}
	m := regexp.MustCompile(`(?s)<script id="job" type="application/json">(.*?)</script>`).FindSubmatch(body)
	if m == nil || !bytes.Contains(body, []byte("new WebSocket(job.relay)")) {
		t.Fatalf("page without its job or script:\n%s", body)
	}
	var pc PageConfig
	if err := json.Unmarshal(m[1], &pc); err != nil {
		t.Fatalf("job config %s: %v", m[1], err)
	}
	if pc.Token == "" || pc.Channel != "report-"+pc.Job || pc.Protocol != protocol {
		t.Fatalf("job config %+v", pc)
	}
	return pc
}

// browser joins the job's channel the way the page does: with the token,
// from a non-authority address, receive-only.
func browser(t *testing.T, pc PageConfig) (*client.Client, *client.Channel) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, pc.Relay, &client.DialOptions{Origin: "http://127.0.0.1:8082"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch, err := c.Join(ctx, pc.Channel, pc.Protocol, &client.JoinOptions{Token: pc.Token, NoIPAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Self.Auth || ch.Self.Mode != client.RecvOnly || ch.Self.Extra["job"] != pc.Job {
		t.Fatalf("browser membership %+v", ch.Self)
	}
	return c, ch
}

// sameReady reports whether two "ready" messages point at the same report.
func sameReady(t *testing.T, a, b *client.MessageEvent) bool {
	t.Helper()
	var ra, rb struct{ URL string }
	if err := a.Decode(&ra); err != nil {
		t.Fatalf("ready message %s: %v", a.Raw, err)
	}
	if err := b.Decode(&rb); err != nil {
		t.Fatalf("ready message %s: %v", b.Raw, err)
	}
	return ra.URL != "" && ra.URL == rb.URL
}

func fetchReport(t *testing.T, appURL string, m *client.MessageEvent) {
	t.Helper()
	var ready struct{ URL string }
	if err := m.Decode(&ready); err != nil || !strings.HasPrefix(ready.URL, "/reports/") {
		t.Fatalf("ready message %s: %v", m.Raw, err)
	}
	resp, err := http.Get(appURL + ready.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "Report ") {
		t.Fatalf("GET %s: %d %s", ready.URL, resp.StatusCode, body)
	}
}

// TestLateBrowserGetsReady is DRC's race: the job ends before the browser
// has joined; the retained "ready" still reaches it, marked as replayed.
func TestLateBrowserGetsReady(t *testing.T) {
	_, appURL, logs := start(t, nil)
	pc := startReport(t, appURL)
	waitLog(t, logs, "job done")
	if !logs.has("delivered=0") {
		t.Fatal("someone received ready before the browser joined")
	}
	c, ch := browser(t, pc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := c.WaitMessage(ctx, ch.Number, "ready")
	if err != nil {
		t.Fatal(err)
	}
	if !m.Replayed || m.From != 0 {
		t.Fatalf("ready %s: want replayed from 0", m.Raw)
	}
	fetchReport(t, appURL, m)
}

// TestWaitingBrowserGetsReady: the browser is there first and gets ready
// live.
func TestWaitingBrowserGetsReady(t *testing.T) {
	release := make(chan struct{})
	_, appURL, logs := start(t, release)
	pc := startReport(t, appURL)
	c, ch := browser(t, pc)
	release <- struct{}{} // the job ends now that the browser is in
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The publish may land between the JOIN's JOINED and its replay of
	// retained messages; the relay then sends "ready" twice, replayed and
	// live (at least once: relay/internal/httpapi/README.md). A replayed copy is allowed only
	// as that duplicate: a live "ready" must still come, with the same body.
	var replayed *client.MessageEvent
	var m *client.MessageEvent
	for m == nil {
		got, err := c.WaitMessage(ctx, ch.Number, "ready")
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !got.Replayed:
			m = got
		case replayed != nil:
			t.Fatalf("ready replayed twice (%s, %s): the browser was waiting, want a live message", replayed.Raw, got.Raw)
		default:
			replayed = got
		}
	}
	if replayed != nil && !sameReady(t, replayed, m) {
		t.Fatalf("replayed ready %s is not the live one %s", replayed.Raw, m.Raw)
	}
	fetchReport(t, appURL, m)
	waitLog(t, logs, "job done")
	if !logs.has("delivered=1") {
		t.Fatal("the backend did not see its publish delivered")
	}
}

func TestHomePage(t *testing.T) {
	_, appURL, _ := start(t, nil)
	resp, err := http.Get(appURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `action="/reports"`) {
		t.Fatalf("home: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(appURL + "/reports/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown report: %d", resp.StatusCode)
	}
}

// waitLog waits until the example has logged s.
func waitLog(t *testing.T, logs *logTap, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !logs.has(s) {
		if time.Now().After(deadline) {
			t.Fatalf("the example never logged %q", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
