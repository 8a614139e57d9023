package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestCentrifugoCommands pins the exact commands a member sends: the
// anonymous connect and the subscribe of Centrifugo's JSON protocol.
func TestCentrifugoCommands(t *testing.T) {
	if got, want := string(centrifugoConnectCmd()), `{"id":1,"connect":{}}`; got != want {
		t.Errorf("connect = %s, want %s", got, want)
	}
	if got, want := string(centrifugoSubscribeCmd(`bench:idle-"1"`)), `{"id":2,"subscribe":{"channel":"bench:idle-\"1\""}}`; got != want {
		t.Errorf("subscribe = %s, want %s", got, want)
	}
}

// fakeCentrifugo is a small server speaking the part of Centrifugo's JSON
// protocol the generator uses: connect, subscribe (in namespace "bench"
// only), an application-level ping right after subscribing that must be
// answered, and POST /api/publish delivering a push to the channel.
type fakeCentrifugo struct {
	t     *testing.T
	addr  string
	pongs atomic.Int64

	mu   sync.Mutex
	subs map[string][]*websocket.Conn
}

func startFakeCentrifugo(t *testing.T) *fakeCentrifugo {
	t.Helper()
	f := &fakeCentrifugo{t: t, subs: map[string][]*websocket.Conn{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/connection/websocket", f.serveWS)
	mux.HandleFunc("POST /api/publish", f.publish)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	f.addr = ln.Addr().String()
	return f
}

func (f *fakeCentrifugo) target() target {
	return target{name: "centrifugo", addr: f.addr, path: "/connection/websocket", proto: "centrifugo"}
}

func (f *fakeCentrifugo) serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	send := func(s string) error { return c.Write(ctx, websocket.MessageText, []byte(s)) }
	connected := false
	for {
		_, p, err := c.Read(ctx)
		if err != nil {
			return
		}
		if string(p) == "{}" {
			f.pongs.Add(1)
			continue
		}
		var cmd struct {
			ID        int              `json:"id"`
			Connect   *json.RawMessage `json:"connect"`
			Subscribe *struct {
				Channel string `json:"channel"`
			} `json:"subscribe"`
		}
		if err := json.Unmarshal(p, &cmd); err != nil {
			f.t.Errorf("fake centrifugo: bad command %q", p)
			return
		}
		switch {
		case cmd.Connect != nil:
			connected = true
			// A push before the reply: the generator must skip it.
			_ = send(fmt.Sprintf("{\"push\":{\"connect\":{}}}\n{\"id\":%d,\"connect\":{\"client\":\"x\",\"ping\":25,\"pong\":true}}", cmd.ID))
		case cmd.Subscribe != nil && connected && strings.HasPrefix(cmd.Subscribe.Channel, centrifugoNamespace+":"):
			f.mu.Lock()
			f.subs[cmd.Subscribe.Channel] = append(f.subs[cmd.Subscribe.Channel], c)
			f.mu.Unlock()
			_ = send(fmt.Sprintf(`{"id":%d,"subscribe":{}}`, cmd.ID))
			_ = send("{}") // ping
		case cmd.Subscribe != nil:
			_ = send(fmt.Sprintf(`{"id":%d,"error":{"code":103,"message":"permission denied"}}`, cmd.ID))
		}
	}
}

func (f *fakeCentrifugo) publish(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	subs := append([]*websocket.Conn(nil), f.subs[req.Channel]...)
	f.mu.Unlock()
	push := fmt.Sprintf(`{"push":{"channel":%q,"pub":{"data":%s}}}`, req.Channel, req.Data)
	for _, c := range subs {
		_ = c.Write(r.Context(), websocket.MessageText, []byte(push))
	}
	w.Write([]byte(`{"result":{}}`))
}

// TestCentrifugoIdle runs the idle scenario against the fake server: every
// member connects, subscribes, answers its ping and gets the publication.
func TestCentrifugoIdle(t *testing.T) {
	f := startFakeCentrifugo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var r result
	if err := runIdle(ctx, f.target(), connOptions{K: 30, Conc: 8, Settle: 10 * time.Millisecond}, &r); err != nil {
		t.Fatal(err)
	}
	if r.Survived != 30 || r.Loss != 0 {
		t.Errorf("%d of 30 members got the publication (loss %d)", r.Survived, r.Loss)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.pongs.Load() < 30 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.pongs.Load(); n != 30 {
		t.Errorf("%d of 30 pings answered", n)
	}
}

// TestCentrifugoRefused checks that a refused subscription fails the run
// with the server's error, not a timeout.
func TestCentrifugoRefused(t *testing.T) {
	f := startFakeCentrifugo(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	_, err := joinCentrifugo(ctx, &net.Dialer{}, f.target(), "other:x", 2048)
	if err == nil || !strings.Contains(err.Error(), "103: permission denied") {
		t.Fatalf("join outside the namespace: %v, want the server's permission denied", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusal took %v", d)
	}
}

// TestDialOrigin checks -origin: the header is sent when set, and absent
// otherwise (the PHP DRC server refuses a handshake without one).
func TestDialOrigin(t *testing.T) {
	got := make(chan string, 2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Origin")
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err == nil {
			c.CloseNow()
		}
	})}
	go hs.Serve(ln)
	defer hs.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, origin := range []string{"http://127.0.0.1", ""} {
		ws, err := dialWS(ctx, &net.Dialer{}, ln.Addr().String(), "/", origin, 256)
		if err != nil {
			t.Fatal(err)
		}
		ws.close()
		if o := <-got; o != origin {
			t.Errorf("server saw Origin %q, want %q", o, origin)
		}
	}
}
