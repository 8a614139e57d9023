package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"
)

// connOptions configures idle, hold and joinrate.
type connOptions struct {
	K         int           // connections
	Conc      int           // connects in flight
	Sources   int           // 127.0.0.x source addresses; 0 = enough for K
	Hold      time.Duration // hold: how long to keep them
	Keepalive time.Duration // hold: client ping interval; 0 = answer server pings only
	Settle    time.Duration // idle: wait before reading RSS
	PreMint   bool          // joinrate: mint every token before timing
	HeapProf  string        // idle: write this process's heap profile once joined (with -relay-inproc)
}

// member is a joined receive-only connection kept open.
type member struct {
	ws    *wsConn
	alive atomic.Bool
	final atomic.Bool // got the end-of-run broadcast
	done  chan struct{}
}

func (m *member) readLoop() {
	defer close(m.done)
	defer m.alive.Store(false)
	for {
		_, p, err := m.ws.readMessage()
		if err != nil {
			return
		}
		if _, _, ok := scanSeqTime(p); ok {
			m.final.Store(true)
		}
	}
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h): bind only the
// source address and pick the port at connect time, per 4-tuple, instead of
// scanning for a port unused by every destination.
const ipBindAddressNoPort = 24

// dialers returns one dialer per loopback source address 127.0.0.1..n. With
// one address the kernel picks the source as usual.
func dialers(n int) []*net.Dialer {
	if n <= 1 {
		return []*net.Dialer{{Timeout: 15 * time.Second}}
	}
	ds := make([]*net.Dialer, n)
	for i := range ds {
		ds[i] = &net.Dialer{Timeout: 15 * time.Second,
			LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))},
			Control: func(_, _ string, c syscall.RawConn) error {
				var serr error
				err := c.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
				})
				if err != nil {
					return err
				}
				return serr
			}}
	}
	return ds
}

// sourcesFor is how many source addresses K connections need: one address
// has about 28,000 ephemeral ports; use 20,000 per address to leave slack
// for TIME_WAIT from earlier runs.
func sourcesFor(k, asked int) int {
	if asked > 0 {
		return min(asked, 250)
	}
	return min(k/20000+1, 250)
}

// connectMembers joins K receive-only members with tokens from pub, at most
// o.Conc at a time; lat (if not nil) records each connect-to-own-JOINED time.
func connectMembers(ctx context.Context, tgt target, pub *publisher, name string, o connOptions, lat []int64) ([]*member, error) {
	ds := dialers(sourcesFor(o.K, o.Sources))
	ms := make([]*member, o.K)
	err := parallel(ctx, o.K, max(o.Conc, 1), func(ctx context.Context, i int) error {
		tok, err := pub.take(ctx)
		if err != nil {
			return err
		}
		t0 := time.Now()
		ws, err := joinMember(ctx, ds[i%len(ds)], tgt.at(i), name, tok, 2048)
		if err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		if lat != nil {
			lat[i] = int64(time.Since(t0))
		}
		m := &member{ws: ws, done: make(chan struct{})}
		m.alive.Store(true)
		ms[i] = m
		go m.readLoop()
		return nil
	})
	return ms, err
}

func closeMembers(ms []*member) {
	for _, m := range ms {
		if m != nil {
			m.ws.close()
		}
	}
	for _, m := range ms {
		if m != nil {
			<-m.done
		}
	}
}

// countFinal broadcasts one message and counts the members that get it
// within wait: the proof that a connection is still joined end to end.
func countFinal(pub *publisher, ms []*member, clk clock, wait time.Duration) (alive, got int) {
	_ = pub.broadcastOne(1, clk, 64)
	return awaitFinal(ms, wait)
}

// awaitFinal counts the members that got the end-of-run message, waiting at
// most wait for every one still alive to get it.
func awaitFinal(ms []*member, wait time.Duration) (alive, got int) {
	deadline := time.Now().Add(wait)
	for {
		alive, got = 0, 0
		for _, m := range ms {
			if m == nil {
				continue
			}
			if m.alive.Load() {
				alive++
			}
			if m.final.Load() {
				got++
			}
		}
		if got >= alive || time.Now().After(deadline) {
			return alive, got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ensureFiles raises this process's and the server's open-file limits for
// K connections, and fails at once when they cannot hold them (rather
// than letting connections time out against a server that cannot accept).
func ensureFiles(tgt target, k int, res *result) error {
	need := uint64(k) + 256
	own := need
	if tgt.pid == 0 {
		own = 2 * need // an in-process server holds the other ends
	}
	got, err := raiseNoFile(0, own)
	if err != nil {
		res.note("generator: " + err.Error())
	}
	if got < own {
		return fmt.Errorf("%d connections need %d open files in this process, the limit is %d (raising it needs CAP_SYS_RESOURCE)", k, own, got)
	}
	if tgt.pid != 0 {
		got, err := raiseNoFile(tgt.pid, need)
		if err != nil {
			res.note("server: " + err.Error())
		}
		if got < need {
			return fmt.Errorf("%d connections need %d open files in the server (pid %d), its limit is %d (raising it needs CAP_SYS_RESOURCE)", k, need, tgt.pid, got)
		}
	}
	return nil
}

// idleJoin is how one protocol joins the idle members and proves at the
// end that they are still joined.
type idleJoin struct {
	connect func(ctx context.Context) ([]*member, error)
	final   func(ms []*member) (alive, got int, err error) // members still joined, and those that got the end-of-run message
}

// runIdle joins K idle members and reports the server's RSS growth per
// connection.
func runIdle(ctx context.Context, tgt target, o connOptions, res *result) error {
	if len(tgt.peers) > 0 {
		return fmt.Errorf("idle measures one instance's memory; run it without -instances")
	}
	if err := ensureFiles(tgt, o.K, res); err != nil {
		return err
	}
	if tgt.proto == "centrifugo" {
		return measureIdle(ctx, tgt, o, res, centrifugoIdle(tgt, o))
	}
	clk := clock{base: time.Now()}
	name := fmt.Sprintf("bench-idle-%d", time.Now().UnixNano())
	pub, err := newPublisher(ctx, tgt, name, 1024)
	if err != nil {
		return err
	}
	defer pub.ws.close()
	return measureIdle(ctx, tgt, o, res, idleJoin{
		connect: func(ctx context.Context) ([]*member, error) {
			pub.mint(ctx, o.K)
			return connectMembers(ctx, tgt, pub, name, o, nil)
		},
		final: func(ms []*member) (int, int, error) {
			alive, got := countFinal(pub, ms, clk, 10*time.Second)
			return alive, got, nil
		},
	})
}

// measureIdle reads the server's RSS, joins the members with j, lets the
// server settle, reads the RSS again and checks the members with j.final.
func measureIdle(ctx context.Context, tgt target, o connOptions, res *result, j idleJoin) error {
	settle := o.Settle
	if settle <= 0 {
		settle = 2 * time.Second
	}
	time.Sleep(settle / 2)
	rss0, _, err0 := procMem(tgt.pid)
	var ms0 runtime.MemStats
	g0 := runtime.NumGoroutine()
	if tgt.pid == 0 {
		runtime.GC()
		runtime.ReadMemStats(&ms0)
	}
	start := time.Now()
	ms, err := j.connect(ctx)
	defer closeMembers(ms)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	time.Sleep(settle)
	if o.HeapProf != "" {
		if err := writeHeapProfile(o.HeapProf); err != nil {
			res.note(err.Error())
		}
	}
	rss1, hwm, err1 := procMem(tgt.pid)
	if tgt.pid == 0 {
		// In-process server: Go's own accounting of both sides together.
		var ms1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms1)
		perConn := func(a, b uint64) string { return fmt.Sprintf("%.2f", (float64(b)-float64(a))/1024/float64(o.K)) }
		res.note(fmt.Sprintf("in-process, server+generator KB/conn after GC: heap %s, stacks %s; goroutines %+d",
			perConn(ms0.HeapInuse, ms1.HeapInuse), perConn(ms0.StackInuse, ms1.StackInuse),
			runtime.NumGoroutine()-g0))
	}
	res.fill(tgt, start, elapsed)
	if err0 == nil && err1 == nil && tgt.pid != 0 {
		res.ServerRSSKB = rss1
		res.ServerHWMKB = hwm
		res.RSSGrowthKB = rss1 - rss0
		res.RSSPerConnKB = float64(int64(float64(rss1-rss0)/float64(o.K)*100)) / 100
	}
	alive, got, err := j.final(ms)
	res.Held, res.Survived = alive, got
	res.Loss = int64(o.K - got)
	return err
}

// writeHeapProfile writes this process's live heap (after a GC) to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	return nil
}

// runHold joins K members from several source addresses, keeps them for
// o.Hold with keepalives and reports how many are still joined.
func runHold(ctx context.Context, tgt target, o connOptions, res *result) error {
	if err := ensureFiles(tgt, o.K, res); err != nil {
		return err
	}
	clk := clock{base: time.Now()}
	name := fmt.Sprintf("bench-hold-%d", time.Now().UnixNano())
	pub, err := newPublisher(ctx, tgt, name, 1024)
	if err != nil {
		return err
	}
	defer pub.ws.close()
	start := time.Now()
	pub.mint(ctx, o.K)
	ms, err := connectMembers(ctx, tgt, pub, name, o, nil)
	defer closeMembers(ms)
	if err != nil {
		return err
	}
	res.JoinsPerS = float64(o.K) / time.Since(start).Seconds()
	holdStart := time.Now()
	cpu0, _ := serverCPU(tgt.pid)
	if o.Keepalive > 0 {
		go pinger(ctx, ms, o.Keepalive, holdStart.Add(o.Hold))
	}
	select {
	case <-time.After(o.Hold):
	case <-ctx.Done():
		return ctx.Err()
	case <-pub.dead:
		return pub.err
	}
	res.fill(tgt, start, time.Since(start))
	if cpu1, err := serverCPU(tgt.pid); err == nil {
		res.ServerCPUPct = pct(cpu1-cpu0, time.Since(holdStart))
	}
	if rss, hwm, err := procMem(tgt.pid); err == nil && tgt.pid != 0 {
		res.ServerRSSKB, res.ServerHWMKB = rss, hwm
	}
	alive, got := countFinal(pub, ms, clk, 20*time.Second)
	res.Held, res.Survived = alive, got
	res.Loss = int64(o.K - got)
	return nil
}

// pinger sends a ping on every member once per interval, spread evenly.
func pinger(ctx context.Context, ms []*member, every time.Duration, until time.Time) {
	if len(ms) == 0 {
		return
	}
	step := every / time.Duration(len(ms))
	t := time.NewTicker(max(step, 50*time.Microsecond))
	defer t.Stop()
	per := max(int(50*time.Microsecond/max(step, 1)), 1)
	i := 0
	for time.Now().Before(until) {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		for range per {
			if m := ms[i%len(ms)]; m != nil && m.alive.Load() {
				_ = m.ws.writeControl(opPing, []byte("rb"))
			}
			i++
		}
	}
}

// runJoinrate measures connect + JOIN until own JOINED for K members.
func runJoinrate(ctx context.Context, tgt target, o connOptions, res *result) error {
	if err := ensureFiles(tgt, o.K, res); err != nil {
		return err
	}
	name := fmt.Sprintf("bench-join-%d", time.Now().UnixNano())
	ahead := 1024
	if o.PreMint {
		ahead = o.K
	}
	pub, err := newPublisher(ctx, tgt, name, ahead)
	if err != nil {
		return err
	}
	defer pub.ws.close()
	pub.mint(ctx, o.K)
	if o.PreMint {
		for len(pub.tokens) < o.K {
			select {
			case <-pub.dead:
				return pub.err
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	lat := make([]int64, o.K)
	cpu0, cpuErr := tgt.cpu()
	nats0, natsCPU0 := tgt.natsNow()
	start := time.Now()
	ms, err := connectMembers(ctx, tgt, pub, name, o, lat)
	elapsed := time.Since(start)
	defer closeMembers(ms)
	if err != nil {
		return err
	}
	res.fill(tgt, start, elapsed)
	if cpu1, err := tgt.cpu(); err == nil && cpuErr == nil {
		res.ServerCPUPct = pct(cpu1-cpu0, elapsed)
		res.ServerCPUPerOpUS = perOp(cpu1-cpu0, int64(o.K))
	}
	// Joins announce themselves asynchronously to the other instances:
	// let those deliveries land before reading the counts.
	time.Sleep(200 * time.Millisecond)
	res.natsPerOp(tgt, nats0, natsCPU0, int64(o.K))
	var h hist
	for _, l := range lat {
		h.add(l)
	}
	res.JoinsPerS = float64(o.K) / elapsed.Seconds()
	res.Latency = h.summary()
	res.Held = o.K
	return nil
}
