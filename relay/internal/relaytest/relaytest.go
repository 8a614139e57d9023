// Package relaytest runs a real relay on loopback and drives it with real
// WebSocket clients, for tests across the module.
package relaytest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay"
)

// Relay is a relay serving on a loopback port.
type Relay struct {
	*relay.Server
	URL  string // ws://127.0.0.1:PORT/
	Addr string // 127.0.0.1:PORT
	HTTP *http.Server
	ln   net.Listener
}

// Config returns the default configuration with logs sent to the test log
// only when RELAY_TEST_LOG=1 (they are noisy otherwise).
func Config(t testing.TB) relay.Config {
	cfg := relay.DefaultConfig()
	var w io.Writer = io.Discard
	if os.Getenv("RELAY_TEST_LOG") == "1" {
		w = os.Stderr
	}
	cfg.Logger = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// RELAY_READ_PARKING=false runs a package's tests with a reader
	// goroutine per connection (.ci/run runs the relay's both ways).
	if v, err := strconv.ParseBool(os.Getenv("RELAY_READ_PARKING")); err == nil {
		cfg.ReadParking = v
	}
	return cfg
}

// Start serves a relay for cfg on 127.0.0.1 (addr "" picks a free port) and
// shuts it down when the test ends.
func Start(t testing.TB, cfg relay.Config, addr string) *Relay {
	t.Helper()
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatalf("relay.New: %v", err)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	r := &Relay{Server: srv, ln: ln, Addr: ln.Addr().String(), URL: "ws://" + ln.Addr().String() + "/"}
	r.HTTP = &http.Server{Handler: srv}
	go r.HTTP.Serve(ln)
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// Stop drains the relay (clients get 1012) and closes its listener. Calling
// it twice is harmless.
func (r *Relay) Stop(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Server.Shutdown(ctx); err != nil {
		t.Errorf("relay shutdown: %v", err)
	}
	r.HTTP.Shutdown(ctx)
}

// Client is a raw protocol client: it sends JSON and reads frames.
type Client struct {
	t      testing.TB
	ws     *websocket.Conn
	frames chan Frame
	done   chan struct{}
	mu     sync.Mutex
	err    error
}

// Frame is one message received from the relay.
type Frame struct {
	Binary bool
	Data   []byte
}

// Map decodes the frame as a JSON object.
func (f Frame) Map(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(string(f.Data)))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("frame %q is not a JSON object: %v", f.Data, err)
	}
	return m
}

// DialOptions adjusts Dial.
type DialOptions struct {
	Header http.Header
	// Local is the local address to dial from (e.g. "127.0.0.2"); "" means
	// any.
	Local string
	// NoRead leaves incoming frames unread (a slow consumer).
	NoRead bool
}

// Dial connects to url and fails the test if it cannot.
func Dial(t testing.TB, url string, opts *DialOptions) *Client {
	t.Helper()
	c, resp, err := TryDial(t, url, opts)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	return c
}

// TryDial connects to url and returns the handshake response on failure.
func TryDial(t testing.TB, url string, opts *DialOptions) (*Client, *http.Response, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	hc := &http.Client{}
	if opts.Local != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(opts.Local)}}
		hc.Transport = &http.Transport{DialContext: d.DialContext}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: opts.Header, HTTPClient: hc})
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(-1)
	c := &Client{t: t, ws: ws, frames: make(chan Frame, 4096), done: make(chan struct{})}
	if !opts.NoRead {
		go c.readLoop()
	}
	t.Cleanup(func() { ws.CloseNow() })
	return c, resp, nil
}

func (c *Client) readLoop() {
	defer close(c.done)
	for {
		typ, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			close(c.frames)
			return
		}
		c.frames <- Frame{Binary: typ == websocket.MessageBinary, Data: data}
	}
}

// Discard drops every frame from now on, so the relay never sees this
// client as slow.
func (c *Client) Discard() {
	go func() {
		for range c.frames {
		}
	}()
}

// Frames returns the channel of received frames, closed when the
// connection ends (then Err says why).
func (c *Client) Frames() <-chan Frame { return c.frames }

// Conn returns the underlying WebSocket.
func (c *Client) Conn() *websocket.Conn { return c.ws }

// Send writes v (a string or []byte is sent as is, anything else as JSON)
// in a text frame.
func (c *Client) Send(v any) { c.t.Helper(); c.write(websocket.MessageText, v) }

// SendBinary writes v in a binary frame.
func (c *Client) SendBinary(v any) { c.t.Helper(); c.write(websocket.MessageBinary, v) }

func (c *Client) write(typ websocket.MessageType, v any) {
	c.t.Helper()
	var data []byte
	switch x := v.(type) {
	case string:
		data = []byte(x)
	case []byte:
		data = x
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			c.t.Fatalf("marshal: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, typ, data); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Next returns the next frame, failing the test after timeout (default 5s).
func (c *Client) Next() Frame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatalf("connection ended while waiting for a frame: %v", c.Err())
		}
		return f
	case <-time.After(5 * time.Second):
		c.t.Fatalf("no frame within 5s")
	}
	return Frame{}
}

// NextMap returns the next frame decoded.
func (c *Client) NextMap() map[string]any {
	c.t.Helper()
	return c.Next().Map(c.t)
}

// Expect reads the next frame and checks it is exactly want (byte for byte).
func (c *Client) Expect(want string) Frame {
	c.t.Helper()
	f := c.Next()
	if string(f.Data) != want {
		c.t.Fatalf("frame:\n got %s\nwant %s", f.Data, want)
	}
	return f
}

// ExpectNone checks no frame arrives within d.
func (c *Client) ExpectNone(d time.Duration) {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if ok {
			c.t.Fatalf("unexpected frame %s", f.Data)
		}
	case <-time.After(d):
	}
}

// Closed waits for the connection to end and returns its close error.
func (c *Client) Closed(timeout time.Duration) error {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-c.frames:
			if !ok {
				return c.Err()
			}
		case <-deadline:
			c.t.Fatalf("connection still open after %v", timeout)
		}
	}
}

// Err returns the error that ended the read loop.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// CloseStatus returns the close code in err, or -1.
func CloseStatus(err error) int {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return int(ce.Code)
	}
	return -1
}
