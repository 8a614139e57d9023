// Package browsertest runs pages in a real browser for Go tests: Debian's
// headless chromium driven by playwright-core under node (driver.mjs beside
// this file). It never downloads a browser.
//
// Install once per checkout (node_modules stays out of git):
//
//	npm ci --prefix relay/jsclient/browsertest
//
// A test that calls Start skips, naming the missing tool (node, chromium or
// playwright-core), unless RELAY_TEST_STRICT=1, in which case it fails.
//
// Environment:
//   - RELAY_CHROMIUM: the chromium binary (default /usr/bin/chromium).
//   - RELAY_ARTIFACTS_DIR: where Screenshot writes (default a fresh
//     temporary directory, logged by the test and kept).
//   - RELAY_TEST_STRICT=1: fail instead of skipping when a tool is missing.
package browsertest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultChromium is the chromium binary used when RELAY_CHROMIUM is unset.
const DefaultChromium = "/usr/bin/chromium"

// Browser is one headless chromium with its node driver.
type Browser struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex // guards writes to stdin, next and calls
	next   int
	calls  map[int]chan reply
	done   chan struct{}
	stderr *lockedBuffer
	arts   string
	t      testing.TB
}

type reply struct {
	ID     int             `json:"id"`
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
}

// Page is one browser tab.
type Page struct {
	b  *Browser
	id int
}

// Dir returns the directory holding driver.mjs and package.json.
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Missing returns the name of the first tool a browser test needs that is
// not installed ("node", "chromium" or "playwright-core"), or "" when all are.
func Missing() string {
	if _, err := exec.LookPath("node"); err != nil {
		return "node"
	}
	if _, err := os.Stat(chromiumPath()); err != nil {
		return "chromium (apt-get install -y chromium, or set RELAY_CHROMIUM)"
	}
	if _, err := os.Stat(filepath.Join(Dir(), "node_modules", "playwright-core", "package.json")); err != nil {
		return "playwright-core (npm ci --prefix relay/jsclient/browsertest)"
	}
	return ""
}

func chromiumPath() string {
	if p := os.Getenv("RELAY_CHROMIUM"); p != "" {
		return p
	}
	return DefaultChromium
}

// RequireTools skips t (or fails it when RELAY_TEST_STRICT=1) when a tool
// the browser tests need is missing.
func RequireTools(t testing.TB) {
	t.Helper()
	if m := Missing(); m != "" {
		if os.Getenv("RELAY_TEST_STRICT") == "1" {
			t.Fatalf("browser test needs %s (RELAY_TEST_STRICT=1)", m)
		}
		t.Skipf("skipping browser test: %s is not installed", m)
	}
}

// Start launches a browser for t and closes it when t ends.
func Start(t testing.TB) *Browser {
	t.Helper()
	RequireTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.Command("node", filepath.Join(Dir(), "driver.mjs"))
	cmd.Dir = Dir()
	cmd.Env = append(os.Environ(), "RELAY_CHROMIUM="+chromiumPath())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan reply, 1)
	b := &Browser{
		cmd:    cmd,
		stdin:  stdin,
		calls:  map[int]chan reply{0: started},
		next:   1,
		done:   make(chan struct{}),
		stderr: &lockedBuffer{},
		t:      t,
	}
	cmd.Stderr = b.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start node driver: %v", err)
	}
	go b.readLoop(stdout)
	t.Cleanup(b.close)
	select {
	case r := <-started:
		if !r.OK {
			t.Fatalf("browser did not start: %s", r.Error)
		}
	case <-b.done:
		t.Fatalf("browser driver exited at start: %s", b.stderr.String())
	case <-ctx.Done():
		t.Fatalf("browser did not start within 60s: %s", b.stderr.String())
	}
	return b
}

func (b *Browser) readLoop(r io.Reader) {
	defer close(b.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		var rep reply
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			continue
		}
		b.mu.Lock()
		ch := b.calls[rep.ID]
		delete(b.calls, rep.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- rep
		}
	}
}

func (b *Browser) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = b.call(ctx, map[string]any{"op": "quit"}, nil)
	_ = b.stdin.Close()
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
	}
	_ = b.cmd.Wait()
}

// call sends one request and decodes its result into out (when non-nil).
func (b *Browser) call(ctx context.Context, req map[string]any, out any) error {
	ch := make(chan reply, 1)
	b.mu.Lock()
	id := b.next
	b.next++
	b.calls[id] = ch
	req["id"] = id
	line, err := json.Marshal(req)
	if err == nil {
		_, err = b.stdin.Write(append(line, '\n'))
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("browser driver: %w", err)
	}
	select {
	case r := <-ch:
		if !r.OK {
			return errors.New(r.Error)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-b.done:
		return fmt.Errorf("browser driver exited: %s", b.stderr.String())
	case <-ctx.Done():
		return fmt.Errorf("browser %v: %w", req["op"], ctx.Err())
	}
}

// NewPage opens a tab; it closes with the browser.
func (b *Browser) NewPage(ctx context.Context) (*Page, error) {
	var r struct {
		Page int `json:"page"`
	}
	if err := b.call(ctx, map[string]any{"op": "newPage"}, &r); err != nil {
		return nil, err
	}
	return &Page{b: b, id: r.Page}, nil
}

// Goto loads url and waits for its load event; it fails on an HTTP error status.
func (p *Page) Goto(ctx context.Context, url string) error {
	var r struct {
		Status int `json:"status"`
	}
	if err := p.b.call(ctx, map[string]any{"op": "goto", "page": p.id, "url": url}, &r); err != nil {
		return err
	}
	if r.Status >= 400 {
		return fmt.Errorf("goto %s: HTTP %d", url, r.Status)
	}
	return nil
}

// Eval evaluates the JavaScript expression expr in the page (awaiting a
// promise it returns) and decodes the JSON result into out (when non-nil).
func (p *Page) Eval(ctx context.Context, expr string, out any) error {
	return p.b.call(ctx, map[string]any{"op": "eval", "page": p.id, "expr": expr}, out)
}

// WaitFor waits until the JavaScript expression expr is truthy in the page.
func (p *Page) WaitFor(ctx context.Context, expr string, timeout time.Duration) error {
	err := p.b.call(ctx, map[string]any{"op": "waitFor", "page": p.id, "expr": expr, "timeout": timeout.Milliseconds()}, nil)
	if err != nil {
		return fmt.Errorf("wait for %s: %w", expr, err)
	}
	return nil
}

// Close closes the tab, as a user closing it would: its sockets go away
// without a goodbye from the page's code.
func (p *Page) Close(ctx context.Context) error {
	return p.b.call(ctx, map[string]any{"op": "closePage", "page": p.id}, nil)
}

// Logs returns the page's console messages and uncaught errors so far.
func (p *Page) Logs(ctx context.Context) []string {
	var logs []string
	_ = p.b.call(ctx, map[string]any{"op": "logs", "page": p.id}, &logs)
	return logs
}

// ConsoleErrors returns the page's console errors and uncaught exceptions
// so far. A resource that failed to load (a 404 for a missing favicon, a
// script) is one, logged with its URL.
func (p *Page) ConsoleErrors(ctx context.Context) []string {
	var errs []string
	for _, l := range p.Logs(ctx) {
		if strings.HasPrefix(l, "error: ") || strings.HasPrefix(l, "pageerror: ") {
			errs = append(errs, l)
		}
	}
	return errs
}

// Screenshot saves a full-page PNG named name (a file name, made safe)
// under ArtifactsDir and returns its path.
func (p *Page) Screenshot(ctx context.Context, name string) (string, error) {
	dir := p.b.artifactsDir()
	path := filepath.Join(dir, safeName.ReplaceAllString(name, "_")+".png")
	if err := p.b.call(ctx, map[string]any{"op": "screenshot", "page": p.id, "path": path}, nil); err != nil {
		return "", err
	}
	p.b.t.Logf("screenshot: %s", path)
	return path, nil
}

var safeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func (b *Browser) artifactsDir() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.arts == "" {
		b.arts = ArtifactsDir(b.t)
	}
	return b.arts
}

// ArtifactsDir returns RELAY_ARTIFACTS_DIR (created if needed) or, when it
// is unset, a new temporary directory that outlives the test so its
// screenshots can be looked at.
func ArtifactsDir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("RELAY_ARTIFACTS_DIR"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("RELAY_ARTIFACTS_DIR: %v", err)
		}
		return d
	}
	d, err := os.MkdirTemp("", "relay-artifacts-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("artifacts in %s (set RELAY_ARTIFACTS_DIR to choose)", d)
	return d
}

// lockedBuffer collects the driver's stderr for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) < 64*1024 {
		l.buf = append(l.buf, p...)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.buf)
}
