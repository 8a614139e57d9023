//go:build unix

package main_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// init makes this test binary a launcher when asked: it lowers its own
// descriptor limit (soft and hard) and replaces itself with the relay, so
// the relay starts under a hard limit it cannot raise.
func init() {
	n, bin := os.Getenv("RELAY_TEST_NOFILE"), os.Getenv("RELAY_TEST_EXEC")
	if n == "" || bin == "" {
		return
	}
	lim, _ := strconv.ParseUint(n, 10, 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: lim, Max: lim}); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		os.Exit(3)
	}
	err := syscall.Exec(bin, []string{bin}, os.Environ())
	fmt.Fprintln(os.Stderr, "exec:", err)
	os.Exit(3)
}

// TestDescriptorLimit: a relay started with 256 descriptors, filled with
// WebSockets, refuses the next ones with 503 and Retry-After before the
// last descriptors are used, so /readyz and /metrics still answer; when
// plain connections take the rest, the condition is logged once (JSON),
// not every second, and probes answer again once they go.
func TestDescriptorLimit(t *testing.T) {
	const limit = 256
	port := freePort(t)
	cmd := exec.Command(os.Args[0])
	cmd.Env = []string{"RELAY_TEST_NOFILE=" + strconv.Itoa(limit), "RELAY_TEST_EXEC=" + buildRelay(t),
		fmt.Sprintf("PORT=%d", port), "RELAY_HOST=127.0.0.1"}
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	probe := func() (int, string) {
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(base + "/metrics")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return resp.StatusCode, string(body)
		}
		resp, err = c.Get(base + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode, string(body)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := probe(); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready:\n%s", logs.String())
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var held []*websocket.Conn
	defer func() {
		for _, ws := range held {
			ws.CloseNow()
		}
	}()
	refused := 0
	for len(held) < limit && refused == 0 {
		ws, resp, err := websocket.Dial(ctx, base, nil)
		switch {
		case err == nil:
			held = append(held, ws)
		case resp != nil && resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
			refused++
		default:
			t.Fatalf("WebSocket %d: %v (%v)\n%s", len(held)+1, err, resp, logs.String())
		}
	}
	t.Logf("%d WebSockets held, then 503", len(held))
	if refused == 0 || len(held) > limit-64 || len(held) < limit/2 {
		t.Fatalf("%d WebSockets held under a limit of %d, refused %d", len(held), limit, refused)
	}
	for range 20 {
		if code, body := probe(); code != 200 {
			t.Fatalf("probe at the WebSocket limit: %d %s", code, body)
		}
	}
	if _, body := probe(); !strings.Contains(body, `relay_refused_total{reason="descriptors"} 1`) {
		t.Errorf("refusal not counted:\n%s", body)
	}

	// Plain connections take the last descriptors: accepting fails.
	var plain []net.Conn
	for range 100 {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			break
		}
		plain = append(plain, c)
	}
	time.Sleep(2500 * time.Millisecond) // net/http would have logged twice by now
	for _, c := range plain {
		c.Close()
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := probe(); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probes did not recover once the plain connections closed:\n%s", logs.String())
		}
	}
	out := logs.String()
	if strings.Contains(out, "Accept error") {
		t.Errorf("net/http's accept error log:\n%s", out)
	}
	if n := strings.Count(out, `"msg":"file descriptors exhausted: cannot accept connections"`); n != 1 {
		t.Errorf("logged the exhausted condition %d times, want once:\n%s", n, out)
	}
	if n := strings.Count(out, `"msg":"file descriptors nearly exhausted: refusing new WebSockets"`); n != 1 {
		t.Errorf("logged the refusal %d times, want once:\n%s", n, out)
	}
}
