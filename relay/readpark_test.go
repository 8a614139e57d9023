package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/cluster/natstest"
	"github.com/relay-project/relay/relay/internal/plugin/plugintest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// rawWS is a WebSocket client without goroutines or buffers of its own
// beyond one bufio.Reader, so a test can hold thousands of connections and
// count the relay's goroutines, and can send frames in pieces.
type rawWS struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, r *relaytest.Relay) *rawWS {
	t.Helper()
	return dialRawAddr(t, r.Addr)
}

func dialRawAddr(t testing.TB, addr string) *rawWS {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", addr)
	br := bufio.NewReaderSize(nc, 512)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return &rawWS{t: t, nc: nc, br: br}
}

// frame returns a masked client frame.
func clientFrame(op byte, payload string) []byte {
	b := []byte{0x80 | op}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	default:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	}
	key := [4]byte{1, 2, 3, 4}
	b = append(b, key[:]...)
	for i := range len(payload) {
		b = append(b, payload[i]^key[i%4])
	}
	return b
}

func (c *rawWS) write(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// next reads one server frame: its opcode and payload.
func (c *rawWS) next() (byte, string) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		io.ReadFull(c.br, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		io.ReadFull(c.br, l[:])
		n = int(binary.BigEndian.Uint64(l[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.br, p); err != nil {
		c.t.Fatalf("read payload: %v", err)
	}
	return h[0] & 0x0f, string(p)
}

// expectText reads frames, answering none, until a text frame; it fails on
// anything else.
func (c *rawWS) expectText(want string) {
	c.t.Helper()
	op, p := c.next()
	if op != 1 || !strings.Contains(p, want) {
		c.t.Fatalf("got frame op %d %q, want text containing %q", op, p, want)
	}
}

// joined reads the JOINED answer and returns the channel number in it.
func (c *rawWS) joined() int {
	c.t.Helper()
	op, p := c.next()
	var m struct {
		Cmd     string `json:"cmd"`
		Channel int    `json:"channel"`
	}
	if op != 1 || json.Unmarshal([]byte(p), &m) != nil || m.Cmd != "JOINED" {
		c.t.Fatalf("got frame op %d %q, want JOINED", op, p)
	}
	return m.Channel
}

func parkingRelay(t *testing.T, parking bool, mutate func(*relay.Config)) *relaytest.Relay {
	t.Helper()
	return startRelay(t, func(c *relay.Config) {
		c.ReadParking = parking
		if mutate != nil {
			mutate(c)
		}
	})
}

// bothReaders runs f with parking on (where the system has it) and off.
func bothReaders(t *testing.T, f func(t *testing.T, parking bool)) {
	t.Run("parked", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("read parking needs Linux (epoll)")
		}
		f(t, true)
	})
	t.Run("goroutine", func(t *testing.T) { f(t, false) })
}

// TestParkedIdleConnectionsHoldNoGoroutine: joined connections with nothing
// to read hold no goroutine in the relay (a reader goroutine each before).
func TestParkedIdleConnectionsHoldNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("read parking needs Linux (epoll)")
	}
	r := parkingRelay(t, true, nil)
	warm := dialRaw(t, r) // starts the poller
	warm.write(clientFrame(1, `{"cmd":"JOIN","channel":"warm","protocol":"p"}`))
	warm.expectText(`"JOINED"`)
	time.Sleep(1500 * time.Millisecond) // idle pool workers end
	before := runtime.NumGoroutine()
	const k = 1000
	conns := make([]*rawWS, k)
	for i := range conns {
		conns[i] = dialRaw(t, r)
		conns[i].write(clientFrame(1, fmt.Sprintf(`{"cmd":"JOIN","channel":"c%d","protocol":"p"}`, i)))
	}
	chans := make([]int, k)
	for i, c := range conns {
		chans[i] = c.joined()
	}
	// Writers and pool workers end once idle.
	deadline := time.Now().Add(5 * time.Second)
	for {
		extra := runtime.NumGoroutine() - before
		if extra <= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle joined connections hold %d goroutines in the relay; want none", k, extra)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, body := httpGetAll(t, "http://"+r.Addr+"/metrics")
	if got := metric(t, body, "relay_read_parked_connections"); got < k+1 {
		t.Errorf("relay_read_parked_connections %v, want at least %d (the set is the process's)", got, k+1)
	}
	// And they still answer.
	conns[k/2].write(clientFrame(1, fmt.Sprintf(`{"cmd":"X","channel":%d,"to":-1}`, chans[k/2])))
	conns[k/2].expectText(`"cmd":"X"`)
}

// TestIdleConnectionsWakeInOrder holds thousands of idle joined
// connections, wakes random subsets at once with bursts of messages, a
// ping and frames split across writes, and checks every one is answered,
// in order.
func TestIdleConnectionsWakeInOrder(t *testing.T) {
	bothReaders(t, func(t *testing.T, parking bool) {
		r := parkingRelay(t, parking, nil)
		const k = 2000
		conns := make([]*rawWS, k)
		for i := range conns {
			conns[i] = dialRaw(t, r)
			conns[i].write(clientFrame(1, fmt.Sprintf(`{"cmd":"JOIN","channel":"c%d","protocol":"p"}`, i)))
		}
		chans := make([]int, k)
		for i, c := range conns {
			chans[i] = c.joined()
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for round := range 3 {
			woken := rng.Perm(k)[:300]
			type half struct {
				c    *rawWS
				rest []byte
			}
			var halves []half
			for j, i := range woken {
				var burst bytes.Buffer
				for n := range 5 {
					burst.Write(clientFrame(1, fmt.Sprintf(`{"cmd":"X","channel":%d,"to":-1,"r":%d,"n":%d}`, chans[i], round, n)))
					if n == 2 {
						burst.Write(clientFrame(9, fmt.Sprintf("ping-%d", i)))
					}
				}
				b := burst.Bytes()
				if j%10 == 0 {
					// Split inside a frame: the relay must wait for the
					// rest without holding up the others.
					conns[i].write(b[:len(b)/2+3])
					halves = append(halves, half{conns[i], b[len(b)/2+3:]})
					continue
				}
				conns[i].write(b)
			}
			time.Sleep(50 * time.Millisecond)
			for _, h := range halves {
				h.c.write(h.rest)
			}
			readRound(t, conns, woken, round)
		}
	})
}

// readRound checks each woken connection got its pong and its five
// messages in order.
func readRound(t *testing.T, conns []*rawWS, woken []int, round int) {
	t.Helper()
	for _, i := range woken {
		c := conns[i]
		n, pong := 0, false
		for n < 5 || !pong {
			op, p := c.next()
			switch op {
			case 10:
				if p != fmt.Sprintf("ping-%d", i) || pong {
					t.Fatalf("connection %d: pong %q", i, p)
				}
				pong = true
			case 1:
				want := fmt.Sprintf(`"r":%d,"n":%d`, round, n)
				if !strings.Contains(p, want) {
					t.Fatalf("connection %d round %d: got %s, want message %d (in order)", i, round, p, n)
				}
				n++
			default:
				t.Fatalf("connection %d: frame op %d %q", i, op, p)
			}
		}
	}
}

// TestPartialFramesDoNotStallOthers: many connections that send part of a
// frame and stop (more than the parked readers' pool) do not delay a
// well-behaved client, and are served when the rest arrives.
func TestPartialFramesDoNotStallOthers(t *testing.T) {
	bothReaders(t, func(t *testing.T, parking bool) {
		r := parkingRelay(t, parking, nil)
		const stalled = 200
		msg := clientFrame(1, `{"cmd":"JOIN","channel":"slow","protocol":"p"}`)
		slow := make([]*rawWS, stalled)
		for i := range slow {
			slow[i] = dialRaw(t, r)
			slow[i].write(msg[:1+i%(len(msg)-1)]) // a header byte up to all but the last byte
		}
		time.Sleep(200 * time.Millisecond)
		c := dialRaw(t, r)
		start := time.Now()
		c.write(clientFrame(1, `{"cmd":"JOIN","channel":"fast","protocol":"p"}`))
		c.expectText(`"JOINED"`)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("a client waited %v behind %d stalled senders", d, stalled)
		}
		for i, s := range slow {
			s.write(msg[1+i%(len(msg)-1):])
		}
		for _, s := range slow {
			s.expectText(`"JOINED"`)
		}
	})
}

// TestGuardedListenerConnectionsPark: connections accepted through
// Server.GuardListener (as cmd/relay serves) park too; its wrapper once hid
// the socket and every connection kept a reader goroutine.
func TestGuardedListenerConnectionsPark(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("read parking needs Linux (epoll)")
	}
	cfg := relaytest.Config(t)
	cfg.ReadParking = true
	srv, err := relay.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(srv.GuardListener(ln))
	defer func() {
		srv.Shutdown(context.Background())
		hs.Close()
	}()
	const k = 20
	for i := range k {
		c := dialRawAddr(t, ln.Addr().String())
		c.write(clientFrame(1, fmt.Sprintf(`{"cmd":"JOIN","channel":"g%d","protocol":"p"}`, i)))
		c.joined()
		defer c.nc.Close()
	}
	// A connection parks after its step wrote JOINED: the last one may be
	// a moment behind its answer.
	var got float64
	deadline := time.Now().Add(5 * time.Second)
	for got < k && time.Now().Before(deadline) {
		_, body := httpGetAll(t, "http://"+ln.Addr().String()+"/metrics")
		if got = metric(t, body, "relay_read_parked_connections"); got < k {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if got < k {
		t.Fatalf("relay_read_parked_connections %v, want at least %d", got, k)
	}
}

// TestWaitingRequestsDoNotStallOthers: 32 connections (twice the parked
// readers' pool) each send a JOIN that an authorize-join plugin holds past
// the plugin deadline; meanwhile joined connections' broadcasts, which
// need no plugin, still round-trip at once. Before, with parking on, the
// waiting JOINs held every pool worker and the broadcasts waited for them.
func TestWaitingRequestsDoNotStallOthers(t *testing.T) {
	bothReaders(t, func(t *testing.T, parking bool) {
		const deadline = 2 * time.Second
		r := parkingRelay(t, parking, func(cfg *relay.Config) {
			cfg.PluginCacheDir = plugintest.CacheDir(t)
			cfg.Plugins = []string{plugintest.Guest(t, "slowjoin")}
			cfg.PluginConfigs = map[string]string{"slowjoin": ""}
			cfg.PluginTimeout = deadline
			cfg.PluginInstances = 4
		})
		s := joinSenders(t, r, 8)
		blocked := waitingJoins(t, r, 32, `,"token":"3s"`)
		s.expectFast(t, deadline*3/4, len(blocked), "JOINs waiting on a plugin")
		for _, c := range blocked {
			c.expectText(`"plugin_timeout"`)
		}
	})
}

// TestWaitingClusterRequestsDoNotStallOthers: the same with JOINs that
// wait on NATS: the answers from NATS stop coming (the connection stays
// up), so each JOIN of a new channel waits for its round trip's deadline,
// while broadcasts in channels the instance already has are delivered
// locally and published without waiting.
func TestWaitingClusterRequestsDoNotStallOthers(t *testing.T) {
	bothReaders(t, func(t *testing.T, parking bool) {
		srv := natstest.Start(t)
		proxy := startStallProxy(t, strings.TrimPrefix(srv.URL(), "nats://"))
		r := startRelay(t, func(c *relay.Config) {
			c.ReadParking = parking
			c.NATSURL = "nats://" + proxy.addr()
			c.ClusterNodeTTL = time.Minute // no lease lapse (1013 for all) while stalled
		})
		s := joinSenders(t, r, 8)
		proxy.stall()
		blocked := waitingJoins(t, r, 32, "")
		s.expectFast(t, 2*time.Second, len(blocked), "JOINs waiting on NATS")
		proxy.heal()
		for _, c := range blocked {
			c.next() // answered once NATS answers, or at the deadline
		}
	})
}

// stallProxy forwards TCP connections to a server; stall holds back the
// server's bytes (the connections stay open) until heal.
type stallProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	held   chan struct{} // non-nil while stalled; closed by heal
}

func startStallProxy(t *testing.T, target string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target}
	var conns []net.Conn
	var mu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		p.heal()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			go io.Copy(out, in)
			go p.forward(in, out)
		}
	}()
	return p
}

func (p *stallProxy) addr() string { return p.ln.Addr().String() }

// forward copies the server's bytes to the client, waiting while stalled.
func (p *stallProxy) forward(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		held := p.held
		p.mu.Unlock()
		if held != nil {
			<-held
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *stallProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = make(chan struct{})
	}
}

func (p *stallProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held != nil {
		close(p.held)
		p.held = nil
	}
}

// senders are joined connections, each alone in its channel.
type senders struct {
	conns []*rawWS
	chans []int
}

func joinSenders(t *testing.T, r *relaytest.Relay, k int) *senders {
	s := &senders{conns: make([]*rawWS, k), chans: make([]int, k)}
	for i := range s.conns {
		s.conns[i] = dialRaw(t, r)
		s.conns[i].write(clientFrame(1, fmt.Sprintf(`{"cmd":"JOIN","channel":"h%d","protocol":"p"}`, i)))
		s.chans[i] = s.conns[i].joined()
	}
	return s
}

// waitingJoins opens k connections, sends a JOIN of a new channel (with
// the extra fields given) on each, and gives the relay a moment to read
// them all.
func waitingJoins(t *testing.T, r *relaytest.Relay, k int, fields string) []*rawWS {
	conns := make([]*rawWS, k)
	for i := range conns {
		conns[i] = dialRaw(t, r)
	}
	for i, c := range conns {
		c.write(clientFrame(1, fmt.Sprintf(`{"cmd":"JOIN","channel":"w%d","protocol":"p"%s}`, i, fields)))
	}
	time.Sleep(100 * time.Millisecond)
	return conns
}

// expectFast has the senders broadcast in turn for the window given and
// fails if their round trips were slowed: the 99th percentile over a small
// bound, or any one past a second (the waits beside take seconds).
func (s *senders) expectFast(t *testing.T, window time.Duration, waiting int, what string) {
	t.Helper()
	var lat []time.Duration
	for start := time.Now(); time.Since(start) < window; {
		n := len(lat)
		for i, c := range s.conns {
			sent := time.Now()
			c.write(clientFrame(1, fmt.Sprintf(`{"cmd":"X","channel":%d,"to":-1,"n":%d}`, s.chans[i], n)))
			c.expectText(fmt.Sprintf(`"n":%d`, n))
			lat = append(lat, time.Since(sent))
		}
	}
	slices.Sort(lat)
	p99, worst := lat[len(lat)*99/100], lat[len(lat)-1]
	t.Logf("%d broadcasts beside %d %s: round trip p99 %v, worst %v", len(lat), waiting, what, p99, worst)
	// Room for a shared machine's hiccups over thousands of round trips.
	if bound := 100*time.Millisecond + schedulingSlack; p99 > bound || worst > time.Second {
		t.Errorf("broadcasts were slowed beside %d %s: round trip p99 %v (want under %v), worst %v (want under 1s)", waiting, what, p99, bound, worst)
	}
}
