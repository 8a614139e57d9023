package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/jsclient/browsertest"
)

// TestChat runs the example as `go run` would and chats between two
// browser tabs, as a person following the README would.
func TestChat(t *testing.T) {
	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	urls := make(chan string, 1)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, options{addr: "127.0.0.1:0", ready: func(u string) { urls <- u }, logf: t.Logf})
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("run ended before serving: %v", err)
	}

	alice, bob := open(ctx, t, b, url+"?name=alice"), open(ctx, t, b, url+"?name=bob")
	say(ctx, t, alice, "hello bob")
	waitFor(ctx, t, bob, `chat.received.some((m) => m.text === 'hello bob' && m.name === 'alice')`)
	say(ctx, t, bob, "hi alice <b>&</b>")
	waitFor(ctx, t, alice, `chat.received.some((m) => m.text === 'hi alice <b>&</b>' && m.name === 'bob')`)

	// What a person sees: both lines in alice's window, markup shown as text.
	var lines []string
	if err := alice.Eval(ctx, `[...document.querySelectorAll('#messages li:not(.system)')].map((li) => li.textContent)`, &lines); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(lines, "|"); got != "alice: hello bob|bob: hi alice <b>&</b>" {
		t.Errorf("alice's window shows %q", got)
	}
	var status string
	alice.Eval(ctx, `document.getElementById('status').textContent`, &status)
	if status != "ready" {
		t.Errorf("status shows %q, want ready", status)
	}
	if _, err := alice.Screenshot(ctx, "browser-chat"); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]*browsertest.Page{"alice": alice, "bob": bob} {
		if errs := p.ConsoleErrors(ctx); len(errs) > 0 {
			t.Errorf("%s's page logged errors (a 404 is a missing file): %q", name, errs)
		}
	}
}

func open(ctx context.Context, t *testing.T, b *browsertest.Browser, url string) *browsertest.Page {
	t.Helper()
	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Goto(ctx, url); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, p, `chat.channel > 0 && !document.getElementById('send').disabled`)
	return p
}

func say(ctx context.Context, t *testing.T, p *browsertest.Page, text string) {
	t.Helper()
	js := fmt.Sprintf(`(() => {
		document.getElementById('text').value = %q;
		document.getElementById('send').click();
		return null;
	})()`, text)
	if err := p.Eval(ctx, js, nil); err != nil {
		t.Fatal(err)
	}
}

func waitFor(ctx context.Context, t *testing.T, p *browsertest.Page, js string) {
	t.Helper()
	if err := p.WaitFor(ctx, js, 15*time.Second); err != nil {
		t.Fatalf("%v\npage logs: %v", err, p.Logs(ctx))
	}
}
