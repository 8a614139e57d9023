package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/jsclient/browsertest"
)

// TestJobProgress runs the example, presses "Build report" in a browser and
// follows the job to "Your report is ready", as the README describes.
func TestJobProgress(t *testing.T) {
	b := browsertest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	urls := make(chan string, 1)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- run(runCtx, options{addr: "127.0.0.1:0", step: 150 * time.Millisecond, ready: func(u string) { urls <- u }, logf: t.Logf})
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

	p, err := b.NewPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Goto(ctx, url); err != nil {
		t.Fatal(err)
	}
	if err := p.Eval(ctx, `document.getElementById('start').click(), null`, nil); err != nil {
		t.Fatal(err)
	}
	// Half way: the bar moves while the job runs.
	if err := p.WaitFor(ctx, `job.percent > 0 && !job.done`, 15*time.Second); err != nil {
		t.Fatalf("%v\npage logs: %v", err, p.Logs(ctx))
	}
	if err := p.WaitFor(ctx, `job.done`, 15*time.Second); err != nil {
		t.Fatalf("%v\npage logs: %v", err, p.Logs(ctx))
	}
	var seen struct {
		Updates  int
		Ready    bool
		Link     string
		Stage    string
		Width    string
		JoinMode int
		CanSend  string
		Button   struct {
			Disabled bool
			Text     string
		}
	}
	err = p.Eval(ctx, `(async () => ({
		Button: { Disabled: document.getElementById('start').disabled, Text: document.getElementById('start').textContent },
		Updates: job.updates,
		Ready: getComputedStyle(document.getElementById('ready')).display !== 'none',
		Link: document.getElementById('link').getAttribute('href'),
		Stage: document.getElementById('stage').textContent,
		Width: document.getElementById('fill').style.width,
		JoinMode: job.client.GetChannel(job.channel).info.mode,
		// The page only listens: the relay refuses its messages.
		CanSend: await job.client.broadcast(job.channel, 'progress', { percent: 1 }).then(() => 'sent', (e) => e.code),
	}))()`, &seen)
	if err != nil {
		t.Fatal(err)
	}
	if seen.Updates != len(stages) || !seen.Ready || !strings.HasPrefix(seen.Link, "/reports/") || seen.Stage != "Done." || seen.Width != "100%" {
		t.Errorf("page after the job: %+v, want %d updates and the report link shown", seen, len(stages))
	}
	if seen.JoinMode != 0 || seen.CanSend != "access_denied" {
		t.Errorf("page joined with mode %d and sending gave %q, want receive only (0, access_denied)", seen.JoinMode, seen.CanSend)
	}
	if seen.Button.Disabled || seen.Button.Text != "Build another report" {
		t.Errorf("after Done the button is %+v, want enabled and saying Build another report", seen.Button)
	}
	// The link works.
	res, err := http.Get(strings.TrimSuffix(url, "/") + seen.Link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "Quarterly report ") {
		t.Errorf("GET %s: %d %q", seen.Link, res.StatusCode, body)
	}
	// The bar's last step is animated; the screenshot shows it full.
	if err := p.WaitFor(ctx, `(() => { const f = document.getElementById('fill'); return f.offsetWidth >= f.parentElement.clientWidth; })()`, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Screenshot(ctx, "job-progress"); err != nil {
		t.Fatal(err)
	}

	// The button builds another report, followed from the start.
	first := seen.Link
	if err := p.Eval(ctx, `document.getElementById('start').click(), null`, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitFor(ctx, `job.done && document.getElementById('link').getAttribute('href') !== '`+first+`'`, 15*time.Second); err != nil {
		t.Fatalf("second report: %v\npage logs: %v", err, p.Logs(ctx))
	}
	var again struct {
		Updates  int
		Disabled bool
	}
	if err := p.Eval(ctx, `({Updates: job.updates, Disabled: document.getElementById('start').disabled})`, &again); err != nil {
		t.Fatal(err)
	}
	if again.Updates != len(stages) || again.Disabled {
		t.Errorf("second report: %+v, want %d updates and the button enabled", again, len(stages))
	}
	if errs := p.ConsoleErrors(ctx); len(errs) > 0 {
		t.Errorf("the page logged errors (a 404 is a missing file): %q", errs)
	}
}
