package relay

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/relay-project/relay/relay/protocol"
)

// parkingAvailable: this system has an epoll-based parked reader.
const parkingAvailable = true

// poller is the process's epoll set of parked connections and the bounded pool
// of workers that read them when they become readable.
type poller struct {
	log  *slog.Logger
	epfd int
	file *os.File        // epfd, in Go's own poller: the loop waits there, not in a blocked system call
	rc   syscall.RawConn // file's

	mu      sync.Mutex
	slots   []*parkedReader // registered connections by key-1 (a slice: a map entry per connection cost ~100 B)
	free    []uint32        // unused slots
	queue   []*parkedReader // readable connections waiting for a worker
	workers int             // pool workers alive (detached ones not counted)
	idle    int             // workers waiting for a signal
	max     int
	signal  chan struct{} // a connection was queued (one token per idle worker woken)
	parked  atomic.Int64  // connections in parkIdle
	stopped chan struct{} // closed when the event loop has returned
}

// workerIdleTimeout is how long a pool worker waits for work before it
// ends: a quiet server holds no workers.
const workerIdleTimeout = time.Second

// newPoller starts an epoll set and its event loop.
func newPoller(log *slog.Logger) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// An epoll set is itself pollable: non-blocking, Go's poller tells the
	// loop when it has events, so waiting for them holds no OS thread and a
	// wake-up is an ordinary goroutine wake-up.
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	file := os.NewFile(uintptr(epfd), "epoll")
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	p := &poller{
		log: log, epfd: epfd, file: file, rc: rc,
		// Workers only run a connection's waiting messages and never wait
		// on a socket (a step that would leaves the pool first), so a few
		// per core keep every core busy.
		max:     max(16, 4*runtime.GOMAXPROCS(0)),
		stopped: make(chan struct{}),
	}
	p.signal = make(chan struct{}, p.max)
	go p.loop()
	return p, nil
}

// loop hands each readable connection to the pool until close. It runs
// inside one RawRead: each RawRead starts by clearing the descriptor's
// readiness, so leaving it between batches could lose an edge that came
// in meanwhile.
func (p *poller) loop() {
	defer close(p.stopped)
	events := make([]unix.EpollEvent, 256)
	var werr error
	p.rc.Read(func(fd uintptr) bool {
		for {
			n, err := unix.EpollWait(int(fd), events, 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				werr = err
				return true
			}
			p.dispatch(events[:n])
			if n < len(events) {
				// Drained: wait for Go's poller to report new events.
				return false
			}
		}
	})
	if werr != nil {
		p.log.Error("read parking: epoll_wait failed", "err", werr)
	}
}

// dispatch wakes the connections of a batch of events.
func (p *poller) dispatch(events []unix.EpollEvent) {
	for _, ev := range events {
		key := uint32(ev.Fd)
		// A stale event may name a slot since reused: the wake is then
		// spurious, and a step finds nothing to read.
		var pr *parkedReader
		p.mu.Lock()
		if key != 0 && int(key) <= len(p.slots) {
			pr = p.slots[key-1]
		}
		p.mu.Unlock()
		if pr != nil {
			pr.wake()
		}
	}
}

func (p *poller) parkedNow() int { return int(p.parked.Load()) }

func (p *poller) workersNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers
}

// submit queues pr for a worker, starting one if none is idle and the pool
// is not full. It never blocks.
func (p *poller) submit(pr *parkedReader) {
	p.mu.Lock()
	p.queue = append(p.queue, pr)
	switch {
	case p.idle > 0:
		p.mu.Unlock()
		select {
		case p.signal <- struct{}{}:
		default:
		}
	case p.workers < p.max:
		p.workers++
		p.mu.Unlock()
		go p.work()
	default:
		p.mu.Unlock()
	}
}

// work runs queued connections until none comes for workerIdleTimeout, or
// until a step leaves the pool to wait on its socket
// (the goroutine then ends with it).
func (p *poller) work() {
	idle := time.NewTimer(workerIdleTimeout)
	defer idle.Stop()
	p.mu.Lock()
	for {
		for len(p.queue) == 0 {
			p.idle++
			p.mu.Unlock()
			idle.Reset(workerIdleTimeout)
			var stop bool
			select {
			case <-p.signal:
			case <-idle.C:
				stop = true
			}
			p.mu.Lock()
			p.idle--
			if stop && len(p.queue) == 0 {
				p.workers--
				p.mu.Unlock()
				return
			}
		}
		pr := p.queue[0]
		p.queue[0] = nil
		p.queue = p.queue[1:]
		if len(p.queue) == 0 {
			p.queue = p.queue[:0:0] // do not keep a burst's backing array
		}
		p.mu.Unlock()
		if !pr.step() {
			return // detached: the pool already counts a worker fewer
		}
		p.mu.Lock()
	}
}

// leavePool takes the calling worker out of the pool's count and starts a
// replacement if connections are waiting.
func (p *poller) leavePool() {
	p.mu.Lock()
	p.workers--
	start := len(p.queue) > 0 && p.idle == 0 && p.workers < p.max
	if start {
		p.workers++
	}
	p.mu.Unlock()
	if start {
		go p.work()
	}
}

// The states of a parked reader.
const (
	parkIdle    int32 = iota // parked: waiting on the epoll set
	parkRunning              // a step is reading
	parkAgain                // a step is reading and was woken again: it reads once more
	parkDone                 // the connection has ended
)

// parkedReader is what the WebSocket library reads through (below a
// minimal bufio.Reader) on a parked connection. During a step it reads
// the socket without blocking: at a message boundary with nothing waiting
// it fails with errParked; in the middle of a frame it leaves the pool and
// waits for the rest like a goroutine-per-connection reader would.
type parkedReader struct {
	c   *conn
	p   *poller
	raw syscall.RawConn // the socket's (its net.Conn is c.sock.Conn)
	key uint32          // its slot in the poller, plus one

	state    atomic.Int32
	stepping atomic.Bool // a step is running: reads do not block between messages
	pooled   atomic.Bool // the running step holds a pool worker

	// Read state. The library reads under its read lock, but a step
	// returns its buffer after the lock is released, when a close
	// handshake on another goroutine may be reading: rmu orders them.
	rmu   sync.Mutex
	track frameTracker
	buf   *[]byte // borrowed from parkBufs during a step; nil while parked
	r, w  int32   // within buf (parkReadBufferBytes); int32 keeps parkedReader at 96 bytes
}

var parkBufs = sync.Pool{New: func() any { b := make([]byte, parkReadBufferBytes); return &b }}

// newParkedReader wraps nc, or returns nil when nc has no socket to park
// (the caller then uses a reader goroutine).
func newParkedReader(p *poller, nc net.Conn) *parkedReader {
	sc, ok := nc.(syscall.Conn)
	if !ok || p == nil {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	pr := &parkedReader{p: p, raw: raw}
	pr.state.Store(parkRunning)
	return pr
}

// start registers the connection in the epoll set, parked; or, when the
// client sent bytes with its upgrade request, runs a first step for them.
func (pr *parkedReader) start() {
	p := pr.p
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		pr.key = p.free[n-1]
		p.free = p.free[:n-1]
		p.slots[pr.key-1] = pr
	} else {
		p.slots = append(p.slots, pr)
		pr.key = uint32(len(p.slots))
	}
	p.mu.Unlock()
	early := pr.c.sock.early != nil
	if !early {
		// Parked before it is registered: registering a readable socket
		// reports it at once.
		pr.state.Store(parkIdle)
		p.parked.Add(1)
	}
	// Edge-triggered: bytes arriving wake the connection once; a step
	// reads until the socket is empty, so no edge is missed, and parking
	// needs no system call.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(pr.key)}
	var err error
	if cerr := pr.raw.Control(func(fd uintptr) {
		err = unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		// The step reads a closed socket and ends the client.
		pr.c.ws.CloseNow()
	}
	if early {
		p.submit(pr)
	} else if err != nil {
		pr.wake()
	}
}

// wake schedules a step: the socket is readable, or the connection is
// closing and its end must run.
func (pr *parkedReader) wake() {
	for {
		switch s := pr.state.Load(); s {
		case parkIdle:
			if pr.state.CompareAndSwap(parkIdle, parkRunning) {
				pr.p.parked.Add(-1)
				pr.p.submit(pr)
				return
			}
		case parkRunning:
			if pr.state.CompareAndSwap(parkRunning, parkAgain) {
				return
			}
		default: // parkAgain, parkDone
			return
		}
	}
}

// step reads and handles the waiting messages, on a pool worker, then
// parks the connection or ends it. It reports whether it still holds its
// worker (false: it left the pool, and its goroutine ends with the step).
func (pr *parkedReader) step() bool {
	c := pr.c
	pr.pooled.Store(true)
	for {
		var reason, err = c.readParked(pr)
		if err == nil {
			continue
		}
		if errors.Is(err, errParked) {
			pr.releaseBuf()
			// Settle the worker before the connection can be stepped again.
			pooled := pr.pooled.Swap(false)
			if pr.state.CompareAndSwap(parkRunning, parkIdle) {
				pr.p.parked.Add(1)
				return pooled
			}
			pr.pooled.Store(pooled)
			pr.state.Store(parkRunning) // woken while reading: read again
			continue
		}
		// The end may wait on the close handshake: not on a pool worker.
		pr.leavePool()
		pr.releaseBuf()
		pr.state.Store(parkDone)
		pr.p.mu.Lock()
		pr.p.slots[pr.key-1] = nil
		pr.p.free = append(pr.p.free, pr.key)
		pr.p.mu.Unlock()
		c.end(reason)
		return false
	}
}

// readParked reads one message for a step. Once the connection is closing,
// a close handshake on another goroutine may hold the library's read lock:
// the step leaves the pool and reads (blocking) until the socket closes.
func (c *conn) readParked(pr *parkedReader) (protocol.CloseReason, error) {
	if c.closing.Load() {
		pr.leavePool()
	} else {
		pr.stepping.Store(true)
		defer pr.stepping.Store(false)
	}
	return c.readMessage()
}

// leavePool releases the step's pool worker, once: from here the step
// may block on its socket without holding up other connections.
func (pr *parkedReader) leavePool() {
	if pr.pooled.CompareAndSwap(true, false) {
		pr.p.leavePool()
	}
}

// beforeBlockingWrite is called before a control frame is written straight
// to the socket (a pong, a close frame): a client that sends pings without
// reading its socket would otherwise hold a pool worker in the write.
func (pr *parkedReader) beforeBlockingWrite() {
	if pr.stepping.Load() {
		pr.leavePool()
	}
}

func (pr *parkedReader) releaseBuf() {
	if !pr.rmu.TryLock() {
		return // being read (a close handshake): the buffer goes with the connection
	}
	defer pr.rmu.Unlock()
	if pr.buf != nil && pr.r == pr.w {
		if len(*pr.buf) == parkReadBufferBytes {
			parkBufs.Put(pr.buf)
		}
		pr.buf, pr.r, pr.w = nil, 0, 0
	}
}

var errWouldBlock = errors.New("would block")

// Read implements io.Reader for the library's bufio.Reader.
func (pr *parkedReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	pr.rmu.Lock()
	defer pr.rmu.Unlock()
	if pr.r < pr.w {
		n := copy(p, (*pr.buf)[pr.r:pr.w])
		pr.r += int32(n)
		pr.track.feed(p[:n])
		return n, nil
	}
	// Small reads (frame headers, small messages) go through the borrowed
	// buffer, one system call for several; large payloads straight to p.
	dst := p
	if len(p) < parkReadBufferBytes && pr.stepping.Load() {
		if pr.buf == nil {
			pr.buf = parkBufs.Get().(*[]byte)
		}
		pr.r, pr.w = 0, 0
		dst = *pr.buf
	}
	// Inside a message, the network read is bounded by the message limits
	// (limits.go), as a reader goroutine's is.
	var n int
	var err error
	if c := pr.c; c.sock.inMessage.Load() {
		n, err = c.readMidMessage((*parkedNet)(pr), dst)
	} else {
		n, err = (*parkedNet)(pr).Read(dst)
	}
	if &dst[0] != &p[0] {
		pr.w = int32(n)
		n = copy(p, (*pr.buf)[:n])
		pr.r = int32(n)
	}
	pr.track.feed(p[:n])
	return n, err
}

// parkedNet is a parked reader's network side.
type parkedNet parkedReader

// Read reads the socket. During a step it does not wait: at a message
// boundary with nothing waiting it fails with errParked; in the middle of
// a frame or message it leaves the pool and waits for the rest off it, so
// slow senders cannot exhaust the pool. Otherwise (a close handshake, a
// closing connection's last step) it is an ordinary blocking read.
func (pn *parkedNet) Read(p []byte) (int, error) {
	pr := (*parkedReader)(pn)
	if cc := pr.c.sock; cc.early != nil {
		// Bytes the client sent with its upgrade request come first.
		return cc.takeEarly(p), nil
	}
	if !pr.stepping.Load() {
		return pr.c.sock.Conn.Read(p)
	}
	n, err := pr.tryRead(p)
	if err == errWouldBlock {
		if pr.track.betweenMessages() {
			return 0, errParked
		}
		pr.leavePool()
		n, err = pr.c.sock.Conn.Read(p)
	}
	return n, err
}

// rawRead is one non-blocking read of a socket through its RawConn. Its
// callback is made once per pooled rawRead: a closure made per read (it
// escapes into RawConn.Read) was ~130 bytes of garbage per message.
type rawRead struct {
	p   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // r.read
}

var rawReads = sync.Pool{New: func() any { r := &rawRead{}; r.fn = r.read; return r }}

func (r *rawRead) read(fd uintptr) bool {
	for {
		r.n, r.err = unix.Read(int(fd), r.p)
		if r.err != unix.EINTR {
			return true
		}
	}
}

// tryRead reads what the socket holds now, without waiting.
func (pr *parkedReader) tryRead(p []byte) (int, error) {
	r := rawReads.Get().(*rawRead)
	r.p = p
	cerr := pr.raw.Read(r.fn)
	n, err := r.n, r.err
	r.p, r.n, r.err = nil, 0, nil
	rawReads.Put(r)
	switch {
	case cerr != nil:
		return 0, cerr
	case err == unix.EAGAIN:
		return 0, errWouldBlock
	case err != nil:
		return 0, err
	case n <= 0:
		return 0, io.EOF
	}
	return n, nil
}
