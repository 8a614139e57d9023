package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/jsclient/browsertest"
)

// TestInBrowser follows the README in a real browser (headless Chromium):
// open the home page, press "Start a report", wait for the link and open
// the report. It runs both orders: the job finishing before the page has
// joined (the page says so) and the page waiting for the job.
func TestInBrowser(t *testing.T) {
	b := browsertest.Start(t)
	for _, tc := range []struct {
		name string
		late bool
	}{
		{"job ends before the page joins", true},
		{"page waits for the job", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var release chan struct{}
			if !tc.late {
				release = make(chan struct{})
			}
			_, appURL, _ := start(t, release)
			p, err := b.NewPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Goto(ctx, appURL+"/"); err != nil {
				t.Fatal(err)
			}
			// Styled like the other demos: their font, a header bar, a card.
			var look struct{ Font, Header, Card string }
			if err := p.Eval(ctx, `({Font: getComputedStyle(document.body).fontFamily,
				Header: getComputedStyle(document.querySelector('header')).backgroundColor,
				Card: getComputedStyle(document.querySelector('main')).backgroundColor})`, &look); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(look.Font, "system-ui") || look.Header != "rgb(29, 92, 87)" || look.Card != "rgb(255, 255, 255)" {
				t.Errorf("home page is not styled like the other demos: %+v", look)
			}
			if _, err := p.Screenshot(ctx, "report-ready-home"); err != nil {
				t.Fatal(err)
			}
			if err := p.Eval(ctx, `(document.querySelector('form button').click(), true)`, nil); err != nil {
				t.Fatal(err)
			}
			if !tc.late {
				waitIn(ctx, t, p, `location.pathname === '/reports' && document.getElementById('status').textContent === 'Working on it…'`)
				if _, err := p.Screenshot(ctx, "report-ready-waiting"); err != nil {
					t.Fatal(err)
				}
				release <- struct{}{} // the job ends now that the page has joined
			}
			waitIn(ctx, t, p, `location.pathname === '/reports' && !!document.querySelector('#status a')`)
			var link struct{ Text, Href string }
			if err := p.Eval(ctx, `(() => { const a = document.querySelector('#status a'); return {text: a.textContent, href: a.getAttribute('href')}; })()`, &link); err != nil {
				t.Fatal(err)
			}
			replayed := strings.Contains(link.Text, "finished before this page connected")
			if !strings.HasPrefix(link.Text, "Your report is ready") || replayed != tc.late || !strings.HasPrefix(link.Href, "/reports/") {
				t.Fatalf("the page shows %+v (late job: %v)", link, tc.late)
			}
			if _, err := p.Screenshot(ctx, "report-ready-"+tc.name); err != nil {
				t.Fatal(err)
			}
			if err := p.Goto(ctx, appURL+link.Href); err != nil {
				t.Fatal(err)
			}
			var body string
			if err := p.Eval(ctx, `document.body.innerText`, &body); err != nil || !strings.HasPrefix(body, "Report ") {
				t.Fatalf("report page %q: %v", body, err)
			}
			if errs := p.ConsoleErrors(ctx); len(errs) > 0 {
				t.Errorf("the pages logged errors (a 404 is a missing file): %q", errs)
			}
		})
	}
}

// waitIn waits for expr in p, retrying while a navigation replaces the page.
func waitIn(ctx context.Context, t *testing.T, p *browsertest.Page, expr string) {
	t.Helper()
	var err error
	for ctx.Err() == nil {
		if err = p.WaitFor(ctx, expr, 10*time.Second); err == nil {
			return
		}
		if !strings.Contains(err.Error(), "context was destroyed") && !strings.Contains(err.Error(), "navigation") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var status string
	_ = p.Eval(ctx, `document.body.innerText`, &status)
	t.Fatalf("%v; page shows %q; console: %v", err, status, p.Logs(ctx))
}
