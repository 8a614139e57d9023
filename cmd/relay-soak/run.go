package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/protocol"
)

// report is one run's outcome, printed as a JSON line.
type report struct {
	Target    string  `json:"target"`
	DurationS float64 `json:"duration_s"`

	Published int64 `json:"published"` // messages the publishers broadcast
	Received  int64 `json:"received"`  // of those, deliveries to healthy members
	Members   int   `json:"members"`   // healthy members
	Churned   int64 `json:"churn_cycles"`
	Attacks   int64 `json:"attacks"`
	Slow      int   `json:"slow_consumers"`

	// Refusals counts error frames by errorcode, closes by close code and
	// reason; every one must be documented.
	Refusals map[string]int64 `json:"refusals"`
	Closes   map[string]int64 `json:"closes"`

	GoroutinesBefore int     `json:"goroutines_before,omitempty"`
	GoroutinesAfter  int     `json:"goroutines_after,omitempty"`
	HeapBeforeMB     float64 `json:"heap_before_mb,omitempty"`
	HeapAfterMB      float64 `json:"heap_after_mb,omitempty"`

	Failures []string `json:"failures"`
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "soak %s for %.1fs: %d published, %d delivered to %d healthy members, %d churn cycles, %d attacks, %d slow consumers\n",
		r.Target, r.DurationS, r.Published, r.Received, r.Members, r.Churned, r.Attacks, r.Slow)
	fmt.Fprintf(w, "refusals %v\ncloses %v\n", r.Refusals, r.Closes)
	if r.GoroutinesBefore != 0 {
		fmt.Fprintf(w, "goroutines %d -> %d, live heap %.1f -> %.1f MiB\n", r.GoroutinesBefore, r.GoroutinesAfter, r.HeapBeforeMB, r.HeapAfterMB)
	}
	if len(r.Failures) == 0 {
		fmt.Fprintln(w, "PASS: every healthy member got every message in order, every refusal was documented")
		return
	}
	for _, f := range r.Failures {
		fmt.Fprintln(w, "FAIL:", f)
	}
}

// soak is one run's shared state.
type soak struct {
	o      *options
	url    string
	inproc bool // guests dial from other loopback addresses than 127.0.0.1

	mu       sync.Mutex
	refusals map[string]int64
	closes   map[string]int64
	failures []string

	published []atomic.Int64 // per channel: the last seq broadcast
	received  atomic.Int64
	churned   atomic.Int64
	attacks   atomic.Int64

	minter *minter
}

func (s *soak) fail(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.failures) < 50 {
		s.failures = append(s.failures, fmt.Sprintf(format, args...))
	}
}

// refused records an error frame's code; an undocumented one is a failure.
func (s *soak) refused(who string, code string) {
	s.mu.Lock()
	s.refusals[code]++
	s.mu.Unlock()
	if c := protocol.Code(code); c == protocol.CodeInternal || c.Text() == protocol.CodeInternal.Text() {
		s.fail("%s got undocumented or internal error code %q", who, code)
	}
}

// documentedCloses maps every close status the relay documents to its reason
// text.
var documentedCloses = func() map[int]bool {
	m := map[int]bool{}
	for _, r := range protocol.CloseReasons() {
		m[r.Status()] = true
	}
	return m
}()

// closed records how the relay ended a connection; an undocumented close
// code is a failure. A connection that ended without a close frame (the
// peer cut it) is recorded as "none".
func (s *soak) closed(who string, err error) {
	st := websocket.CloseStatus(err)
	key := "none"
	if st != -1 {
		var ce websocket.CloseError
		errors.As(err, &ce)
		key = fmt.Sprintf("%d %s", st, ce.Reason)
		if !documentedCloses[int(st)] {
			s.fail("%s closed with undocumented code %d (%q)", who, st, ce.Reason)
		}
	}
	s.mu.Lock()
	s.closes[key]++
	s.mu.Unlock()
}

func run(ctx context.Context, o *options) (*report, error) {
	s := &soak{o: o, url: o.url, refusals: map[string]int64{}, closes: map[string]int64{}}
	s.published = make([]atomic.Int64, o.channels)
	rep := &report{Target: o.url}
	var srv *relay.Server
	if o.url == "" {
		var stop func()
		var err error
		srv, s.url, stop, err = serveInproc()
		if err != nil {
			return nil, err
		}
		defer stop()
		s.inproc = true
		rep.Target = "in-process relay (default configuration, authority 127.0.0.1)"
		settle()
		rep.GoroutinesBefore, rep.HeapBeforeMB = runtime.NumGoroutine(), liveHeapMB()
	}
	start := time.Now()

	m, err := dialMinter(ctx, s)
	if err != nil {
		return nil, err
	}
	s.minter = m

	loadCtx, stopLoad := context.WithTimeout(ctx, o.duration)
	defer stopLoad()
	var load, members sync.WaitGroup

	// Healthy members join first so they see the stream from its start.
	var healthy []*healthyMember
	for ch := range o.channels {
		for i := range o.members {
			hm, err := joinHealthy(ctx, s, ch, i)
			if err != nil {
				return nil, fmt.Errorf("healthy member %d of channel %d: %w", i, ch, err)
			}
			healthy = append(healthy, hm)
			members.Go(func() { hm.read(s) })
		}
	}
	rep.Members = len(healthy)
	pubs := make([]*publisher, o.channels)
	for ch := range o.channels {
		p, err := startPublisher(ctx, s, ch)
		if err != nil {
			return nil, fmt.Errorf("publisher of channel %d: %w", ch, err)
		}
		pubs[ch] = p
		load.Go(func() { p.publish(loadCtx, s) })
	}
	var slow []*websocket.Conn
	for i := range o.slow {
		c, err := joinSlow(ctx, s, i)
		if err != nil {
			s.fail("slow consumer %d could not join: %v", i, err)
			continue
		}
		slow = append(slow, c)
	}
	rep.Slow = len(slow)
	for i := range o.churners {
		load.Go(func() { churn(loadCtx, s, i) })
	}
	for i := range o.attackers {
		load.Go(func() { attack(loadCtx, s, i) })
	}
	load.Wait()

	// Let the last messages arrive, then check every healthy member.
	deadline := time.Now().Add(5 * time.Second)
	for _, hm := range healthy {
		for hm.last.Load() < s.published[hm.channel].Load() && time.Now().Before(deadline) && !hm.gone.Load() {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, hm := range healthy {
		want := s.published[hm.channel].Load()
		if got := hm.last.Load(); got != want {
			s.fail("healthy member %d of channel %d ends at message %d of %d", hm.index, hm.channel, got, want)
		}
		if hm.first.Load() != 1 {
			s.fail("healthy member %d of channel %d missed the start: its first message is %d", hm.index, hm.channel, hm.first.Load())
		}
	}
	for _, p := range pubs {
		p.ws.CloseNow()
	}
	for _, hm := range healthy {
		hm.closing.Store(true)
		hm.ws.CloseNow()
	}
	for _, c := range slow {
		c.CloseNow()
	}
	m.ws.CloseNow()
	members.Wait()
	for _, p := range pubs {
		p.wait()
	}
	for _, p := range pubs {
		rep.Published += p.seq
	}
	rep.DurationS = time.Since(start).Seconds()

	if srv != nil {
		// Everyone is gone: the relay must be back where it started.
		for deadline := time.Now().Add(10 * time.Second); srv.Clients() > 0 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		if n := srv.Clients(); n != 0 {
			s.fail("%d connections still open on the relay 10 s after every client left", n)
		}
		settle()
		rep.GoroutinesAfter, rep.HeapAfterMB = runtime.NumGoroutine(), liveHeapMB()
		if rep.GoroutinesAfter > rep.GoroutinesBefore+o.goroutineSlack {
			s.fail("goroutines grew from %d to %d (bound: +%d)", rep.GoroutinesBefore, rep.GoroutinesAfter, o.goroutineSlack)
		}
		if rep.HeapAfterMB > rep.HeapBeforeMB+float64(o.heapSlackMB) {
			s.fail("live heap grew from %.1f to %.1f MiB (bound: +%d MiB)", rep.HeapBeforeMB, rep.HeapAfterMB, o.heapSlackMB)
		}
	}
	rep.Received, rep.Churned, rep.Attacks = s.received.Load(), s.churned.Load(), s.attacks.Load()
	s.mu.Lock()
	rep.Refusals, rep.Closes = s.refusals, s.closes
	rep.Failures = append([]string{}, s.failures...)
	s.mu.Unlock()
	sort.Strings(rep.Failures)
	return rep, nil
}

// serveInproc serves a relay with the default configuration, except that
// only 127.0.0.1 is an authority address, on a free loopback port.
func serveInproc() (*relay.Server, string, func(), error) {
	cfg := relay.DefaultConfig()
	cfg.AuthorityIPs = []string{"127.0.0.1"}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := relay.New(cfg)
	if err != nil {
		return nil, "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", nil, err
	}
	hs := &http.Server{Handler: srv}
	go func() { _ = hs.Serve(ln) }()
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = hs.Shutdown(ctx)
	}
	return srv, "ws://" + ln.Addr().String() + "/", stop, nil
}

func settle() {
	for range 3 {
		runtime.GC()
		time.Sleep(50 * time.Millisecond)
	}
}

func liveHeapMB() float64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// dial opens a WebSocket from source (a loopback address; "" for the
// system's choice).
func dial(ctx context.Context, s *soak, source string) (*websocket.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if source != "" && s.inproc {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
	}
	tr := &http.Transport{DialContext: d.DialContext}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, s.url, &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	return ws, nil
}

// guestAddr is the loopback source address of guest number i (never
// 127.0.0.1, the in-process relay's authority address).
func guestAddr(i int) string { return fmt.Sprintf("127.0.%d.%d", 1+i/250, 2+i%250) }

func channelName(ch int) string { return fmt.Sprintf("soak-%d", ch) }

// frame is the part of a server frame the soak looks at.
type frame struct {
	Cmd       string `json:"cmd"`
	Channel   int64  `json:"channel"`
	Success   *bool  `json:"success"`
	ErrorCode string `json:"errorcode"`
	Token     string `json:"token"`
	Seq       int64  `json:"seq"`
	ID        int64  `json:"id"`
	Clients   any    `json:"clients"`
}

func readFrame(ctx context.Context, ws *websocket.Conn, d time.Duration) (frame, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, data, err := ws.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{}, fmt.Errorf("frame %.100q: %w", data, err)
	}
	return f, nil
}

func send(ctx context.Context, ws *websocket.Conn, msg string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return ws.Write(ctx, websocket.MessageText, []byte(msg))
}

// isClosed reports whether err means the connection ended.
func isClosed(err error) bool {
	return websocket.CloseStatus(err) != -1 || strings.Contains(err.Error(), "EOF") || strings.Contains(err.Error(), "closed")
}
