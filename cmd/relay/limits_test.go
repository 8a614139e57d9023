package main_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// startProcess runs the relay binary with env on a free loopback port and
// waits until it is ready.
func startProcess(t *testing.T, env ...string) (cmd *exec.Cmd, addr string, logs *lockedBuffer) {
	t.Helper()
	port := freePort(t)
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	cmd = exec.Command(buildRelay(t))
	cmd.Env = append([]string{fmt.Sprintf("PORT=%d", port), "RELAY_HOST=127.0.0.1"}, env...)
	logs = &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, addr, logs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// maskedText is one masked client text frame (RFC 6455 section 5.2) of a
// payload under 64 KB.
func maskedText(payload string) []byte {
	b := []byte{0x81}
	if n := len(payload); n < 126 {
		b = append(b, 0x80|byte(n))
	} else {
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	}
	b = append(b, 0, 0, 0, 0) // a zero mask leaves the payload as is
	return append(b, payload...)
}

// TestShutdownTimeoutIsHard: with a client that does not read (its socket
// full, the close handshake stuck), the process still exits within
// RELAY_SHUTDOWN_TIMEOUT.
func TestShutdownTimeoutIsHard(t *testing.T) {
	const timeout = 2 * time.Second
	cmd, addr, logs := startProcess(t, "RELAY_SHUTDOWN_TIMEOUT=2s", "RELAY_WRITE_TIMEOUT=1m",
		"RELAY_OUTBOUND_QUEUE_BYTES=268435456")

	// Two clients that join, then never read again: one the relay's
	// broadcasts fill, one silent (its close handshake never answered).
	full := upgradeRaw(t, addr, "c")
	full.(*net.TCPConn).SetReadBuffer(4096)
	upgradeRaw(t, addr, "quiet")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.CloseNow()
	pub.SetReadLimit(-1)
	pub.Write(ctx, websocket.MessageText, []byte(`{"cmd":"JOIN","channel":"c","protocol":"p"}`))
	pubClosed := make(chan error, 1)
	go func() {
		for {
			if _, _, err := pub.Read(ctx); err != nil {
				pubClosed <- err
				return
			}
		}
	}()
	// Far more than the stuck client's socket holds: the rest waits in
	// its queue, and so does the close frame.
	msg := fmt.Sprintf(`{"cmd":"X","channel":1,"to":-1,"p":%q}`, strings.Repeat("x", 60000))
	for range 400 {
		if err := pub.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, logs.String())
	}
	elapsed := time.Since(start)
	if elapsed > timeout+time.Second { // 5 s and more before the fix
		t.Fatalf("exited %v after SIGTERM with RELAY_SHUTDOWN_TIMEOUT=2s\n%s", elapsed, logs.String())
	}
	t.Logf("exited %v after SIGTERM", elapsed)
	if err := <-pubClosed; websocket.CloseStatus(err) != websocket.StatusServiceRestart {
		t.Fatalf("the reading client closed with %v, want 1012", err)
	}
}

// upgradeRaw opens a WebSocket by hand, joins channel (name, "p") and
// never reads from it again.
func upgradeRaw(t *testing.T, addr, name string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	c.Write(maskedText(fmt.Sprintf(`{"cmd":"JOIN","channel":%q,"protocol":"p"}`, name)))
	return c
}

// closedWithin reads c until the server closes it and returns how long
// that took, failing after limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return time.Since(start)
}

// TestHTTPHeaderTimeout: a TCP connection that never sends a request, or
// sends its headers a byte at a time, is closed RELAY_HTTP_HEADER_TIMEOUT
// after it opened, while a client that sends its request is served.
func TestHTTPHeaderTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	_, addr, _ := startProcess(t, "RELAY_HTTP_HEADER_TIMEOUT=300ms")

	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	silent := dial()
	trickle := dial()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		// A header line a byte every 50 ms: never whole in time.
		header := fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\nX-Slow: %s", addr, strings.Repeat("a", 100))
		for i := range len(header) {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := trickle.Write([]byte{header[i]}); err != nil {
				return
			}
		}
	}()
	// How long after the dial each was closed; 5 s or more: still open.
	start := time.Now()
	closedAfter := func(c net.Conn) <-chan time.Duration {
		d := make(chan time.Duration, 1)
		go func() {
			c.SetReadDeadline(start.Add(5 * time.Second))
			io.Copy(io.Discard, c)
			d <- time.Since(start)
		}()
		return d
	}
	silentClosed, trickleClosed := closedAfter(silent), closedAfter(trickle)

	// Served meanwhile: a request sent at once, on a connection opened
	// before the others are closed, and a WebSocket.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz beside the silent connections: %v %v", resp, err)
	}
	resp.Body.Close()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	// Both were closed about the timeout after they opened, not at once
	// and not at the 10 s default.
	for what, ch := range map[string]<-chan time.Duration{"a connection that sends nothing": silentClosed, "headers that trickle": trickleClosed} {
		if d := <-ch; d < timeout-50*time.Millisecond || d > timeout+time.Second {
			t.Errorf("%s: closed %v after the dial, want about %v", what, d, timeout)
		}
	}

	// Counted: the connection that sent nothing (headers that trickle
	// sent something, and are not).
	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`relay_refused_total{reason="silent_connection"} 1`+"\n")) {
		t.Errorf("/metrics lacks relay_refused_total{reason=\"silent_connection\"} 1:\n%s", grepLines(body, "relay_refused_total"))
	}

	// The header timeout has long passed for the WebSocket's handshake.
	ws.Write(ctx, websocket.MessageText, []byte(`{"cmd":"JOIN","channel":"c","protocol":"p"}`))
	if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), `"cmd":"JOINED"`) {
		t.Fatalf("WebSocket after the header timeout: %s %v", data, err)
	}
}

// TestHTTPTimeouts: cmd/relay's HTTP server closes a request whose body
// trickles (RELAY_HTTP_READ_TIMEOUT) and a keep-alive connection left idle
// (RELAY_HTTP_IDLE_TIMEOUT); a WebSocket outlives both.
func TestHTTPTimeouts(t *testing.T) {
	const timeout = 500 * time.Millisecond
	_, addr, _ := startProcess(t, "RELAY_HTTP_READ_TIMEOUT=500ms", "RELAY_HTTP_IDLE_TIMEOUT=500ms")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "POST /v1/publish HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", addr)
	d := closedWithin(t, slow, 5*time.Second)
	if d > timeout+time.Second {
		t.Fatalf("slow body held %v", d)
	}

	// RELAY_HTTP_READ_TIMEOUT bounds the headers too, although the
	// header timeout (10 s) is longer.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	if d := closedWithin(t, silent, 5*time.Second); d > timeout+time.Second {
		t.Fatalf("a connection that sent nothing held %v", d)
	}

	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	fmt.Fprintf(idle, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	start := time.Now()
	idle.SetReadDeadline(start.Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil || time.Since(start) > timeout+time.Second {
		t.Fatalf("idle keep-alive connection: %v after %v", err, time.Since(start))
	}

	// Both timeouts have long passed for the WebSocket's upgrade request.
	ws.Write(ctx, websocket.MessageText, []byte(`{"cmd":"JOIN","channel":"c","protocol":"p"}`))
	if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), `"cmd":"JOINED"`) {
		t.Fatalf("WebSocket after the HTTP timeouts: %s %v", data, err)
	}
}

// grepLines returns the lines of b that contain s.
func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
