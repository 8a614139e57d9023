package main

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// fanoutOptions configures the fan-out scenario.
type fanoutOptions struct {
	N        int           // subscribers
	Size     int           // delivered message size in bytes
	Duration time.Duration // publishing time
	Rate     float64       // messages/s; 0 = as fast as the window allows
	Window   int           // max broadcasts in flight (sent, not yet at every receiver)
	Batch    int           // max broadcasts per publisher write
	Drain    time.Duration // how long to wait for stragglers after publishing
}

// subscriber is one receive-only member counting what it gets.
type subscriber struct {
	ws      *wsConn
	last    atomic.Int64 // highest seq received
	recv    atomic.Int64
	reorder int64 // owned by the reader until done closes
	h       hist
	done    chan struct{}
}

// readLoop counts deliveries. seqAt is where the sequence number sits in a
// delivery. The clock is read when a message starts a new read from the
// kernel and every 16 messages: messages that arrived in one read arrived
// together, and the bound keeps the error to a few microseconds.
func (s *subscriber) readLoop(clk clock, pub *publisher, seqAt int) {
	defer close(s.done)
	var now int64
	var n int
	for {
		_, p, err := s.ws.readMessage()
		if err != nil {
			return
		}
		seq, t, ok := scanSeqTimeAt(p, seqAt)
		if !ok {
			continue
		}
		if s.ws.fresh || n&15 == 0 {
			now = clk.now()
		}
		n++
		s.h.add(now - t)
		if seq <= s.last.Load() {
			s.reorder++
		} else {
			s.last.Store(seq)
		}
		s.recv.Add(1)
		if seq&7 == 0 {
			pub.poke()
		}
	}
}

// runFanout publishes broadcasts to N receive-only subscribers and measures
// deliveries, loss, reordering and latency.
func runFanout(ctx context.Context, tgt target, o fanoutOptions, res *result) error {
	if o.Window < 1 {
		o.Window = 256
	}
	if o.Batch < 1 {
		o.Batch = 16
	}
	if o.Drain <= 0 {
		o.Drain = 5 * time.Second
	}
	clk := clock{base: time.Now()}
	name := fmt.Sprintf("bench-fanout-%d", time.Now().UnixNano())
	pub, err := newPublisher(ctx, tgt, name, min(o.N, 1024))
	if err != nil {
		return err
	}
	defer pub.ws.close()
	pub.mint(ctx, o.N)

	subs := make([]*subscriber, o.N)
	d := &net.Dialer{Timeout: 10 * time.Second}
	if err := parallel(ctx, o.N, 32, func(ctx context.Context, i int) error {
		tok, err := pub.take(ctx)
		if err != nil {
			return err
		}
		ws, err := joinMember(ctx, d, tgt.at(i), name, tok, 64<<10)
		if err != nil {
			return err
		}
		subs[i] = &subscriber{ws: ws, done: make(chan struct{})}
		return nil
	}); err != nil {
		closeSubs(subs)
		return fmt.Errorf("join subscribers: %w", err)
	}
	defer closeSubs(subs)
	tmpl := newMsgTemplate(pub.channel, pub.id, o.Size)
	seqAt := len(tmpl.deliveredPrefix())
	for _, s := range subs {
		go s.readLoop(clk, pub, seqAt)
	}

	minLast := func() int64 {
		m := pub.last.Load()
		for _, s := range subs {
			if v := s.last.Load(); v < m {
				m = v
			}
		}
		return m
	}

	cpu0, cpuErr := tgt.cpu()
	w0, werr := writes(tgt)
	nats0, natsCPU0 := tgt.natsNow()
	self0 := selfCPU()
	mach := startCPUWindow()
	start := time.Now()
	end := start.Add(o.Duration)
	buf := make([]byte, 0, o.Batch*(o.Size+64))
	var seq int64
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	wait := func(d time.Duration) {
		timer.Reset(d)
		select {
		case <-pub.wake:
		case <-timer.C:
		case <-ctx.Done():
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
publish:
	for {
		now := time.Now()
		if !now.Before(end) || ctx.Err() != nil {
			break
		}
		select {
		case <-pub.dead:
			break publish
		default:
		}
		k := o.Batch
		if o.Rate > 0 {
			due := int64(now.Sub(start).Seconds()*o.Rate) + 1
			if due <= seq {
				next := start.Add(time.Duration(float64(seq) / o.Rate * float64(time.Second)))
				time.Sleep(min(time.Until(next), time.Until(end)))
				continue
			}
			k = min(k, int(due-seq))
		} else {
			room := int64(o.Window) - (seq - minLast())
			if room <= 0 {
				wait(time.Millisecond)
				continue
			}
			k = min(k, int(room))
		}
		buf = buf[:0]
		for range k {
			seq++
			buf = tmpl.appendFrame(buf, seq, clk.now())
		}
		if err := pub.ws.write(buf); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	pubEnd := time.Now()
	want := seq * int64(o.N)
	var got int64
	drainEnd := pubEnd.Add(o.Drain)
	lastSeen := pubEnd
	for {
		got = 0
		for _, s := range subs {
			got += s.recv.Load()
		}
		if got >= want {
			lastSeen = time.Now()
			break
		}
		if time.Now().After(drainEnd) || ctx.Err() != nil {
			lastSeen = time.Now()
			break
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := lastSeen.Sub(start)
	selfUsed := selfCPU() - self0
	res.fill(tgt, start, elapsed)
	if cpu1, err := tgt.cpu(); err == nil && cpuErr == nil {
		res.ServerCPUPct = pct(cpu1-cpu0, elapsed)
		res.ServerCPUPerOpUS = perOp(cpu1-cpu0, seq*int64(o.N))
	}
	res.natsPerOp(tgt, nats0, natsCPU0, seq)
	res.ClientCPUPct = pct(selfUsed, elapsed)
	res.MachineCPUPct = mach.busyPct(runtime.NumCPU())
	closeSubs(subs)
	var all hist
	for _, s := range subs {
		<-s.done
		all.merge(&s.h)
		res.Reorder += s.reorder
	}
	res.Published = seq
	res.Expected = want
	res.Delivered = got
	res.Loss = max(want-got, 0)
	res.DeliveriesPerS = float64(got) / elapsed.Seconds()
	if w1, err := writes(tgt); err == nil && werr == nil && w1 > w0 {
		// The publisher's echo counts as a delivery for the server.
		res.DeliveriesPerWrite = float64(int64(float64(got+seq)/float64(w1-w0)*100)) / 100
	}
	res.PublishedPerS = float64(seq) / pubEnd.Sub(start).Seconds()
	res.Latency = all.summary()
	select {
	case <-pub.dead:
		if res.Loss > 0 {
			return pub.err
		}
	default:
	}
	return nil
}

// writes sums the write system calls of every instance.
func writes(tgt target) (int64, error) {
	var sum int64
	for _, pid := range tgt.pids() {
		_, w, err := procSyscalls(pid)
		if err != nil {
			return 0, err
		}
		sum += w
	}
	return sum, nil
}

func closeSubs(subs []*subscriber) {
	for _, s := range subs {
		if s != nil {
			s.ws.close()
		}
	}
}

// serverCPU reads the CPU time of pid; 0 means unknown.
func serverCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		return 0, fmt.Errorf("no server pid")
	}
	return procCPU(pid)
}

// perOp is CPU time per operation in microseconds, two decimals.
func perOp(d time.Duration, ops int64) float64 {
	if ops <= 0 {
		return 0
	}
	return float64(int64(float64(d.Nanoseconds())/float64(ops)/10)) / 100
}

func pct(d, over time.Duration) float64 {
	if over <= 0 {
		return 0
	}
	return float64(int64(float64(d)/float64(over)*1000)) / 10
}

// parallel runs fn for i in [0,n) on at most conc goroutines and returns the
// first error (the others are then told to stop through ctx).
func parallel(ctx context.Context, n, conc int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range min(conc, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}
