package relay_test

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/relaytest"
	"github.com/relay-project/relay/relay/protocol"
)

// feed is a healthy channel beside an attack: an authority publishes
// numbered messages and a guest member must receive every one, in order.
type feed struct {
	t    *testing.T
	pub  *relaytest.Client
	sub  *relaytest.Client
	ch   int
	next int
}

func newFeed(t *testing.T, r *relaytest.Relay, name string) *feed {
	t.Helper()
	pub := authority(t, r)
	m := join(t, pub, name, "p", "")
	sub := guest(t, r)
	join(t, sub, name, "p", grant(t, pub, name, "p", 0, `{}`, false))
	pub.Discard() // it only publishes; notifications of attackers pile up otherwise
	f := &feed{t: t, pub: pub, sub: sub}
	fmt.Sscan(fmt.Sprint(m["channel"]), &f.ch)
	return f
}

// check publishes n messages and fails unless the member gets them, and
// every earlier one, in order. Other frames (an attacker's broadcasts) are
// skipped.
func (f *feed) check(n int) {
	f.t.Helper()
	for range n {
		f.pub.Send(fmt.Sprintf(`{"cmd":"SEQ","channel":%d,"to":-1,"n":%d}`, f.ch, f.next))
		f.next++
	}
	want := f.next - n
	for want < f.next {
		fr := f.sub.Next()
		if !bytes.Contains(fr.Data, []byte(`"cmd":"SEQ"`)) {
			continue
		}
		if !bytes.HasSuffix(fr.Data, []byte(fmt.Sprintf(`"n":%d}`, want))) {
			f.t.Fatalf("healthy member: got %s, want message %d (a gap)", fr.Data, want)
		}
		want++
	}
}

// within fails unless d is in [lo, hi].
func within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Fatalf("%s after %v, want between %v and %v", what, d, lo, hi)
	}
}

// TestMessageTimeout: a message that trickles in, fragment by fragment,
// is cut off RELAY_MESSAGE_TIMEOUT after it started, with 1008, however
// often a fragment arrives; the healthy member beside it loses nothing.
func TestMessageTimeout(t *testing.T) {
	const timeout = 400 * time.Millisecond
	r := startRelay(t, func(c *relay.Config) { c.MessageTimeout = timeout })
	f := newFeed(t, r, "c")
	bad := rawDial(t, r, guestAddr)
	bad.joinRaw("c", grant(t, authority(t, r), "c", "p", 2, `{}`, false))

	start := time.Now()
	bad.write(frame(false, opText, []byte(`{"cmd":"X","channel":1,"to":-1,"p":"`)))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // one more byte every 50 ms, never the last fragment
		defer wg.Done()
		for bad.write(frame(false, opCont, []byte("x"))) {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	f.check(20)
	code, reason := bad.closeCode(5 * time.Second)
	close(stop)
	wg.Wait()
	if code != protocol.StatusPolicyViolation || reason != protocol.CloseMessageTimeout.Text() {
		t.Fatalf("closed with %d %q, want 1008 %q", code, reason, protocol.CloseMessageTimeout.Text())
	}
	within(t, "closed", time.Since(start), timeout, timeout+2*time.Second)
	waitFor(t, func() bool { return r.Stats().Closed[protocol.CloseMessageTimeout] == 1 })
	f.check(20)
	// A whole message, however large, is not affected.
	a := authority(t, r)
	join(t, a, "c", "p", "")
	a.Send(fmt.Sprintf(`{"cmd":"BIG","channel":1,"to":-1,"p":%q}`, strings.Repeat("y", 60000)))
	if fr := a.Next(); !bytes.Contains(fr.Data, []byte(`"cmd":"BIG"`)) {
		t.Fatalf("big message: %.100s", fr.Data)
	}
	f.check(5)
}

// TestUnfinishedBudget: unfinished messages of every client together may
// hold RELAY_UNFINISHED_BYTES; the client that passes it is closed with
// 1013 at once, and the bytes are released when a message ends.
func TestUnfinishedBudget(t *testing.T) {
	const budget = 64 << 10
	r := startRelay(t, func(c *relay.Config) {
		c.UnfinishedBytes = budget
		c.MessageTimeout = time.Minute
	})
	f := newFeed(t, r, "c")
	part := frame(false, opText, []byte(`{"cmd":"X","pad":"`+strings.Repeat("z", 25<<10)))
	var held []*rawConn
	for range 2 {
		c := rawDial(t, r, guestAddr)
		c.write(part)
		held = append(held, c)
	}
	waitFor(t, func() bool { return gauge(t, r, "relay_unfinished_message_bytes") > 2*24<<10 })
	over := rawDial(t, r, guestAddr)
	start := time.Now()
	over.write(part)
	code, reason := over.closeCode(5 * time.Second)
	if code != protocol.StatusTryAgainLater || reason != protocol.CloseUnfinishedBudget.Text() {
		t.Fatalf("closed with %d %q, want 1013 %q", code, reason, protocol.CloseUnfinishedBudget.Text())
	}
	within(t, "closed", time.Since(start), 0, 2*time.Second)
	f.check(10)
	// The two within the budget are still open; when their messages end
	// (one finishes, one disconnects) nothing is held any more.
	held[0].write(frame(true, opCont, []byte(`"}`)))
	if got := held[0].next(); !strings.Contains(got, `"errorcode":"missing_channel"`) {
		t.Fatalf("finished message: %s", got)
	}
	held[1].nc.Close()
	waitFor(t, func() bool { return gauge(t, r, "relay_unfinished_message_bytes") == 0 })
	if got := r.Stats().Closed[protocol.CloseUnfinishedBudget]; got != 1 {
		t.Fatalf("unfinished_budget closes: %d, want 1", got)
	}
	f.check(10)
}

func gauge(t *testing.T, r *relaytest.Relay, name string) float64 {
	t.Helper()
	_, body := httpGetAll(t, "http://"+r.Addr+"/metrics")
	return metric(t, body, name)
}

// TestJoinTimeout: a connection in no channel for RELAY_JOIN_TIMEOUT, after
// connecting or after leaving its last channel, is closed with 1008; one
// that proved authority (its address, or an authority token) is not.
func TestJoinTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	r := startRelay(t, func(c *relay.Config) {
		c.JoinTimeout = timeout
		c.AuthorityTokens = []string{"backend-secret"}
	})
	start := time.Now()
	idle := guest(t, r)
	byAddr := authority(t, r) // an authority address
	byToken := guest(t, r)    // the PHP SDK's CreateToken flow: GRANT only
	byToken.Send(`{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":2,"extra":{},"token":"backend-secret"}`)
	if m := byToken.NextMap(); m["cmd"] != "GRANTED" {
		t.Fatalf("GRANT with the authority token: %v", m)
	}
	member := guest(t, r)
	join(t, member, "c", "p", grant(t, byAddr, "c", "p", 2, `{}`, false))

	err := idle.Closed(5 * time.Second)
	if relaytest.CloseStatus(err) != protocol.StatusPolicyViolation || !strings.Contains(err.Error(), protocol.CloseJoinTimeout.Text()) {
		t.Fatalf("idle guest closed with %v, want 1008 %q", err, protocol.CloseJoinTimeout.Text())
	}
	within(t, "idle guest closed", time.Since(start), timeout, timeout+2*time.Second)

	// The member stays while it is in a channel, then gets the same grace.
	time.Sleep(2 * timeout)
	// The grace starts when the relay handles the LEAVE, after the send
	// and before LEFT comes back: timed from the send, the close is never
	// early.
	left := time.Now()
	member.Send(`{"cmd":"LEAVE","channel":1}`)
	if m := member.NextMap(); m["cmd"] != "LEFT" {
		t.Fatalf("LEAVE: %v", m)
	}
	if err := member.Closed(5 * time.Second); relaytest.CloseStatus(err) != protocol.StatusPolicyViolation {
		t.Fatalf("member closed with %v, want 1008", err)
	}
	within(t, "member closed", time.Since(left), timeout, timeout+2*time.Second)

	// The authorities, never in a channel, are still served.
	for _, c := range []*relaytest.Client{byAddr, byToken} {
		c.Send(`{"cmd":"GRANT","channel":"c","protocol":"p","clientmode":2,"extra":{},"token":"backend-secret"}`)
		if m := c.NextMap(); m["cmd"] != "GRANTED" {
			t.Fatalf("authority after %v in no channel: %v", time.Since(start), m)
		}
	}
	waitFor(t, func() bool { return r.Stats().Closed[protocol.CloseJoinTimeout] == 2 })
}

// TestRateLimit: a flooding guest gets rate_limited, then a 1008 close; a
// healthy guest on the same channel loses nothing, and an authority
// publishing far past the guest rate is not limited.
func TestRateLimit(t *testing.T) {
	const rate, burst = 50, 20
	r := startRelay(t, func(c *relay.Config) {
		c.ClientRate = rate
		c.ClientBurst = burst
	})
	f := newFeed(t, r, "c")
	f.check(500) // 500 at once from an authority: exempt

	p := sendPaced(t, r, 1_000_000, 5*time.Second) // as fast as it can
	delivered, refused, closeErr, elapsed := p.early+p.late, p.refused, p.closeErr, p.closedAfter
	if relaytest.CloseStatus(closeErr) != protocol.StatusPolicyViolation || !strings.Contains(closeErr.Error(), protocol.CloseRateLimited.Text()) {
		t.Fatalf("flooder closed with %v, want 1008 %q", closeErr, protocol.CloseRateLimited.Text())
	}
	// The JOIN took one token of the burst.
	if most := burst + int(elapsed.Seconds()*rate) + 1; delivered < burst-1 || delivered > most {
		t.Fatalf("%d of the flood delivered in %v, want %d..%d (%d refused, %v)", delivered, elapsed, burst, most, refused, closeErr)
	}
	// A burst's worth of refusals closes it, plus what was forgiven
	// meanwhile (twice the rate).
	if most := burst + 1 + int(elapsed.Seconds()*2*rate) + 1; refused < 1 || refused > most {
		t.Fatalf("%d rate_limited answers in %v, want 1..%d", refused, elapsed, most)
	}
	f.check(50)
	waitFor(t, func() bool { return r.Stats().Closed[protocol.CloseRateLimited] == 1 })
}

// TestRateLimitOverRate: a client that keeps sending at twice its rate is
// refused the excess but still gets its rate through, steadily, and stays
// connected: a refused message takes no token. One that keeps sending at
// five times its rate is closed with 1008.
func TestRateLimitOverRate(t *testing.T) {
	const rate, burst = 50, 10
	r := startRelay(t, func(c *relay.Config) {
		c.ClientRate = rate
		c.ClientBurst = burst
	})
	f := newFeed(t, r, "c")

	const run = 3 * time.Second
	p := sendPaced(t, r, 2*rate, run)
	if p.closeErr != nil {
		t.Fatalf("closed with %v after %v (%d+%d delivered, %d refused)", p.closeErr, p.closedAfter, p.early, p.late, p.refused)
	}
	// After the first second the burst is spent: what gets through is the
	// rate, about 50 a second for the remaining two (and a half, for the
	// last answers in flight).
	if lo, hi := int(0.7*rate*(run-time.Second).Seconds()), int(rate*(run+500*time.Millisecond-time.Second).Seconds())+2; p.late < lo || p.late > hi {
		t.Fatalf("%d delivered after the first second, want %d..%d (%d in the first, %d refused)", p.late, lo, hi, p.early, p.refused)
	}
	if most := burst + rate + 2; p.early > most {
		t.Fatalf("%d delivered in the first second, want at most %d", p.early, most)
	}
	if p.refused < rate {
		t.Fatalf("%d refused, want about %d", p.refused, rate*int(run.Seconds()))
	}
	f.check(50)
	if n := r.Stats().Closed[protocol.CloseRateLimited]; n != 0 {
		t.Fatalf("%d closed for the rate", n)
	}

	// At five times the rate refusals pile up faster than they are
	// forgiven (twice the rate): a burst's worth takes 0.1 s once the
	// tokens are spent.
	p = sendPaced(t, r, 5*rate, run)
	if relaytest.CloseStatus(p.closeErr) != protocol.StatusPolicyViolation || !strings.Contains(p.closeErr.Error(), protocol.CloseRateLimited.Text()) {
		t.Fatalf("at five times the rate: closed with %v, want 1008 %q", p.closeErr, protocol.CloseRateLimited.Text())
	}
	within(t, "at five times the rate, closed", p.closedAfter, 0, 2*time.Second)
	f.check(50)
}

// pacedResult is what a client sending at a steady pace saw.
type pacedResult struct {
	early, late, refused int // delivered in the first second and after it; refused
	closeErr             error
	closedAfter          time.Duration
}

// sendPaced joins a new guest to channel "c" and has it broadcast perSecond
// messages a second for run (then wait half a second more for answers),
// unless the relay closes it first.
func sendPaced(t *testing.T, r *relaytest.Relay, perSecond int, run time.Duration) pacedResult {
	t.Helper()
	c := guest(t, r)
	join(t, c, "c", "p", grant(t, authority(t, r), "c", "p", 2, `{}`, false))
	start := time.Now()
	go func() {
		// Paced by the clock, not by sleeps, so the average stays at
		// perSecond however late the goroutine is scheduled.
		sent := 0
		for time.Since(start) < run {
			for target := int(time.Since(start).Seconds() * float64(perSecond)); sent < target; sent++ {
				if err := c.Conn().Write(t.Context(), websocket.MessageText, fmt.Appendf(nil, `{"cmd":"F","channel":1,"to":-1,"i":%d}`, sent)); err != nil {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var p pacedResult
	for end := time.After(run + 500*time.Millisecond); ; {
		select {
		case fr, ok := <-c.Frames():
			if !ok {
				p.closeErr, p.closedAfter = c.Err(), time.Since(start)
				return p
			}
			switch {
			case bytes.Contains(fr.Data, []byte(`"cmd":"F"`)) && time.Since(start) < time.Second:
				p.early++
			case bytes.Contains(fr.Data, []byte(`"cmd":"F"`)):
				p.late++
			case bytes.Contains(fr.Data, []byte(`"errorcode":"rate_limited"`)):
				p.refused++
			}
		case <-end:
			c.Conn().CloseNow()
			return p
		}
	}
}

// TestPingTimeoutCloseFrame: a client that does not answer the keepalive
// ping gets a 1001 close frame, not a cut connection.
func TestPingTimeoutCloseFrame(t *testing.T) {
	const interval = 200 * time.Millisecond
	r := startRelay(t, func(c *relay.Config) { c.PingInterval = interval })
	f := newFeed(t, r, "c")
	silent := rawDial(t, r, guestAddr) // reads, never answers a ping
	start := time.Now()
	code, reason := silent.closeCode(5 * time.Second)
	if code != protocol.StatusGoingAway || reason != protocol.ClosePingTimeout.Text() {
		t.Fatalf("closed with %d %q, want 1001 %q", code, reason, protocol.ClosePingTimeout.Text())
	}
	within(t, "closed", time.Since(start), interval, 2*interval+time.Second)
	f.check(10)
}

// TestSlowConsumerLoggedOnce: a slow consumer is logged (and closed) once,
// however many broadcasts overflow its queue before the close.
func TestSlowConsumerLoggedOnce(t *testing.T) {
	var logs relaytest.LogBuffer
	r := startRelay(t, func(c *relay.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.OutboundQueueBytes = 64 << 10
		c.MaxMessageBytes = 4 << 10
	})
	pub := authority(t, r)
	join(t, pub, "c", "p", "")
	slow := relaytest.Dial(t, r.URL, &relaytest.DialOptions{Local: authAddr, NoRead: true})
	slow.Send(`{"cmd":"JOIN","channel":"c","protocol":"p"}`)
	slowID := id(pub.NextMap())
	// Many messages to it back to back: they reach its full queue faster
	// than the close takes effect.
	msg := fmt.Sprintf(`{"cmd":"T","channel":1,"to":%s,"p":%q}`, slowID, strings.Repeat("x", 3000))
	for range 3000 {
		pub.Send(msg)
	}
	waitFor(t, func() bool { return r.Stats().Closed[protocol.CloseSlowConsumer] == 1 })
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(logs.String(), `msg="slow consumer"`); n != 1 {
		t.Fatalf("slow consumer logged %d times, want once", n)
	}
}

// TestMessageTimeoutEarlyBytes: a message whose start arrives with the
// upgrade request (already in net/http's buffer) is bounded like any
// other.
func TestMessageTimeoutEarlyBytes(t *testing.T) {
	const timeout = 300 * time.Millisecond
	r := startRelay(t, func(c *relay.Config) { c.MessageTimeout = timeout })
	nc, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", r.Addr)
	start := time.Now()
	nc.Write(append([]byte(req), frame(false, opText, []byte(`{"cmd":"X","p":"`))...)) // one write: one segment
	c := &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
	if resp, err := http.ReadResponse(c.br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	code, reason := c.closeCode(5 * time.Second)
	if code != protocol.StatusPolicyViolation || reason != protocol.CloseMessageTimeout.Text() {
		t.Fatalf("closed with %d %q, want 1008 %q", code, reason, protocol.CloseMessageTimeout.Text())
	}
	within(t, "closed", time.Since(start), timeout, timeout+2*time.Second)
}

// TestUnfinishedBudgetEarlyBytes: an unfinished message that arrives with
// the upgrade request (already in net/http's buffer) is charged to the
// unfinished-messages budget like any other: with another client holding
// most of the budget, it is closed with 1013. It used to be read from
// net/http's 4 KB buffer, outside the budget, and was closed only by the
// message timeout.
func TestUnfinishedBudgetEarlyBytes(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) {
		c.MaxMessageBytes = 4 << 10
		c.UnfinishedBytes = 4 << 10
		c.MessageTimeout = time.Minute
	})
	part := frame(false, opText, []byte(`{"cmd":"X","p":"`+strings.Repeat("z", 3<<10)))
	held := rawDial(t, r, guestAddr) // holds about 3 KB of the 4 KB budget
	held.write(part)
	waitFor(t, func() bool { return gauge(t, r, "relay_unfinished_message_bytes") > 2<<10 })
	nc, err := net.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	req := fmt.Sprintf("GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", r.Addr)
	start := time.Now()
	nc.Write(append([]byte(req), part...)) // one write: one segment, under net/http's 4 KB
	c := &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
	if resp, err := http.ReadResponse(c.br, nil); err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	code, reason := c.closeCode(5 * time.Second)
	if code != protocol.StatusTryAgainLater || reason != protocol.CloseUnfinishedBudget.Text() {
		t.Fatalf("closed with %d %q, want 1013 %q", code, reason, protocol.CloseUnfinishedBudget.Text())
	}
	within(t, "closed", time.Since(start), 0, 2*time.Second)
}
