package relay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay/internal/auth"
	"github.com/relay-project/relay/relay/internal/hub"
	"github.com/relay-project/relay/relay/protocol"
)

// conn is one WebSocket connection, the server side of a client: its read loop (this file), its
// outbound queue and write loop (this file), and its protocol state
// (session.go).
//
// The hot path: the read loop decodes a request and, for a message, encodes
// the delivered frame once; the hub hands those bytes to every recipient's
// send, which appends them to the recipient's queue and, if no writer is
// running, starts one. The writer takes the whole queue, writes it through
// the WebSocket library into a corked socket, and uncorks: one write system
// call per batch, however many messages it held.
type conn struct {
	id     int64
	srv    *Server
	ws     *websocket.Conn
	sock   *corkConn // sock.park nil: a reader goroutine (readLoop) serves the client
	addr   auth.Client
	origin string

	// Outbound queue. A client with nothing to write holds no writer
	// goroutine and no buffers.
	mu      sync.Mutex
	queue   []hub.Frame   // waiting to be written; the write loop's batch in flight at its front
	queued  int           // bytes in queue, not counting the batch in flight
	drained chan struct{} // closed by writeLoop when the queue empties (shutdown waits on it)
	closing atomic.Bool   // no more frames are accepted
	liveAt  int32         // its index in Server.live; guarded by Server.mu (beside closing: no padding)
	writing bool          // a writeLoop goroutine is running
	reason  uint8         // a protocol.CloseReason; a byte, beside writing
	ping    pingLink      // its place in Server.pings (pingsched.go); guarded by that
	ageStop *time.Timer   // RELAY_MAX_CONNECTION_AGE; nil when off

	// Protocol state, owned by the read loop.
	chans   []*membership // a slice, not a map: a map of one channel cost ~190 bytes more
	nonAuth int32         // memberships without authority
	kind    uint8         // the kind of request being handled, for metrics
	// Limits' flags (limits.go), here to share nonAuth's word: with the
	// small fields packed, conn takes 256 bytes, the size class below 288.
	authority bool // proved authority: exempt from the join timeout and, by default, the rate limit
	msgWaited bool // the current message waited for the network: msgTimer runs
	perAddr   bool // counted under its address by admit (admission.go)

	// Limits (limits.go), owned by the read loop.
	joinTimer  *time.Timer // closes the connection while it is in no channel; nil otherwise
	msgTimer   *time.Timer // bounds a message that waits for the network; nil otherwise
	msgHeld    int64       // bytes of the current message charged to Server.unfinished
	rateTokens float64     // messages the client may send now, 0..RELAY_CLIENT_BURST
	rateOwed   float64     // refused messages not yet forgiven; past RELAY_CLIENT_BURST the client is closed
	rateLast   time.Duration
}

var _ hub.Recipient = (*conn)(nil)

// newConn returns the connection of an upgraded socket, before its read
// loop starts.
func newConn(s *Server, id int64, ws *websocket.Conn, sock *corkConn, park *parkedReader, addr auth.Client, origin string) *conn {
	c := &conn{
		id:     id,
		srv:    s,
		ws:     ws,
		sock:   sock,
		addr:   addr,
		origin: origin,

		authority:  s.auths.ByAddrAnyProtocol(addr),
		rateTokens: float64(s.cfg.ClientBurst),
		rateLast:   time.Since(s.started),
	}
	sock.owner = c
	if park != nil {
		park.c = c
	}
	return c
}

// log returns the logger for this client's lines. It is built when a line
// is written rather than held: a logger with the client's id costs a few
// hundred bytes per connection, which idle connections should not pay.
func (c *conn) log() *slog.Logger { return c.srv.log.With("client", c.id) }

// debug logs at debug level without building the logger when debug lines
// are off (connects and disconnects are frequent).
func (c *conn) debug(msg string, args ...any) {
	if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		c.log().Debug(msg, args...)
	}
}

// CloseGap implements hub.Closer: the cluster lost events of one of the
// client's channels, so it is closed with 1013 to rejoin. It never blocks.
func (c *conn) CloseGap() { go c.closeWith(protocol.CloseClusterGap) }

// ClientID implements hub.Recipient.
func (c *conn) ClientID() int64 { return c.id }

// serve starts serving the client: on a parked connection it returns at
// once (the poller's workers read it); otherwise it runs a reader goroutine.
// Either way end runs once when the connection ends.
func (c *conn) serve() {
	c.debug("connected", "addr", c.addr, "origin", c.origin)
	c.ws.SetReadLimit(-1) // readMessage enforces the limit with its own close reason
	c.srv.pings.add(c)
	c.armJoinTimeout()
	if age := c.srv.cfg.MaxConnectionAge; age > 0 {
		c.ageStop = time.AfterFunc(jittered(age), c.retire)
	}
	if c.sock.park != nil {
		c.sock.park.start()
		return
	}
	go func() { c.end(c.readLoop()) }()
}

// end leaves every channel the client was in and finishes its connection.
func (c *conn) end(reason protocol.CloseReason) {
	defer c.srv.serving.Done()
	defer c.srv.unadmit(c.addr, c.perAddr) // the admission slot (admission.go)
	if c.ageStop != nil {
		c.ageStop.Stop()
	}
	first := c.markClosing(reason)
	c.srv.pings.remove(c) // after markClosing: a ping in flight does not reschedule it
	// Leave before the close handshake, which may wait for the peer: the
	// other members hear of the departure at once.
	c.leaveAll()
	c.stopLimitTimers()
	c.srv.unregister(c)
	c.srv.closed[c.closeReason()].Add(1)
	if first {
		c.closeSocket(reason)
	}
	c.debug("disconnected", "reason", c.closeReason().String())
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// readLoop is the reader goroutine of a connection that is not parked: it
// reads and handles messages until the connection ends.
func (c *conn) readLoop() protocol.CloseReason {
	for {
		if reason, err := c.readMessage(); err != nil {
			return reason
		}
	}
}

// readCtx is the context a connection's reads run under: the connection
// itself, so the WebSocket library's ping callback (onPing, one function
// for every connection) learns whose ping it is from the context it is
// given (the library derives a timeout context from it, whose Value asks
// this one), instead of each connection holding a closure (16 bytes). It
// is never done: the relay bounds reads with its own limits.
type readCtx conn

// connKey is the Value key under which a readCtx gives its connection.
type connKey struct{}

func (*readCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (*readCtx) Done() <-chan struct{}       { return nil }
func (*readCtx) Err() error                  { return nil }

func (rc *readCtx) Value(key any) any {
	if key == (connKey{}) {
		return (*conn)(rc)
	}
	return nil
}

// onPing is the WebSocket library's ping callback: it reports whether to
// answer a client's ping (the rate limit counts pings too).
func onPing(ctx context.Context, _ []byte) bool {
	if c, ok := ctx.Value(connKey{}).(*conn); ok {
		return c.pingReceived()
	}
	// Read under another context: the library's own close handshake, on a
	// closing connection, whose pings are answered.
	return true
}

// readMessage reads one message, enforces the limits on it and handles it;
// both readers (readLoop, and a parked connection's step) call it for each
// message. A non-nil error ends the connection with the reason returned,
// except errParked: a parked connection has nothing to read now.
func (c *conn) readMessage() (protocol.CloseReason, error) {
	limit := c.srv.cfg.MaxMessageBytes
	typ, r, err := c.ws.Reader((*readCtx)(c))
	if err != nil {
		return protocol.CloseClientGone, err
	}
	bp := readBufs.Get().(*[]byte)
	c.sock.inMessage.Store(true)
	data, err := readLimited(r, (*bp)[:0], limit)
	c.messageEnded()
	if err != nil {
		readBufs.Put(bp)
		switch {
		case errors.Is(err, errTooBig):
			c.log().Info("message over the size limit", "limit", limit)
			return protocol.CloseMessageTooBig, err
		case errors.Is(err, errUnfinishedBudget):
			return protocol.CloseUnfinishedBudget, err
		}
		return protocol.CloseClientGone, err
	}
	c.srv.metrics.BytesIn.Add(float64(len(data)))
	binary := typ == websocket.MessageBinary
	allowed, abuse := true, false
	if c.rateLimited() {
		allowed, abuse = c.checkRate(binary)
	}
	if abuse {
		readBufs.Put(bp)
		return protocol.CloseRateLimited, errRateAbuse
	}
	if allowed {
		c.handle(data, binary)
	}
	*bp = data[:0]
	readBufs.Put(bp)
	return 0, nil
}

var errRateAbuse = errors.New("message rate limit exceeded")

var errTooBig = errors.New("message too big")

// readLimited reads r to its end into buf, failing with errTooBig past limit
// bytes.
func readLimited(r io.Reader, buf []byte, limit int) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return buf, errTooBig
			}
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, errTooBig
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// Send implements hub.Recipient: it queues f and never blocks. A queue over
// its byte cap marks the client a slow consumer and disconnects it. The cap
// is on backlog: a frame larger than the cap alone (the JOINED of a big
// channel) is queued when nothing else waits.
func (c *conn) Send(f hub.Frame) bool {
	if c.closing.Load() {
		return false
	}
	c.mu.Lock()
	if queued := c.queued; queued > 0 && queued+len(f.Data) > c.srv.cfg.OutboundQueueBytes {
		c.mu.Unlock()
		// Only the first overflow logs and closes: a broadcast storm
		// calls Send thousands of times before the close takes effect.
		if c.markClosing(protocol.CloseSlowConsumer) {
			c.log().Warn("slow consumer", "queued_bytes", queued, "limit", c.srv.cfg.OutboundQueueBytes)
			go c.closeSocket(protocol.CloseSlowConsumer)
		}
		return false
	}
	c.queue = append(c.queue, f)
	c.queued += len(f.Data)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
	return true
}

// writeLoop writes batches until the queue is empty, then exits.
//
// The batch is the front of the queue itself: while it is written, Send
// appends behind it (never touching it; an append that grows the queue
// copies it, and the write goes on from the old array), and afterwards
// what came meanwhile moves to the front. One slice and one array per
// connection, kept across runs so Send does not regrow the queue from
// nothing each time the writer restarts; a pair that traded places cost an
// idle connection a second slice header (24 bytes) in conn.
func (c *conn) writeLoop() {
	for {
		c.mu.Lock()
		n := len(c.queue)
		if n == 0 {
			c.writing = false
			if cap(c.queue) > maxKeptBatch {
				c.queue = nil // do not keep a burst's array around
			}
			if c.drained != nil {
				close(c.drained)
				c.drained = nil
			}
			c.mu.Unlock()
			return
		}
		batch := c.queue[:n:n]
		c.queued = 0
		c.mu.Unlock()

		if err := c.writeBatch(batch); err != nil {
			reason := protocol.CloseClientGone
			if errors.Is(err, errWriteTimeout) {
				reason = protocol.CloseWriteTimeout
			}
			first := c.markClosing(reason)
			if first && reason == protocol.CloseWriteTimeout {
				c.log().Warn("slow consumer: write timed out", "timeout", c.srv.cfg.WriteTimeout)
			}
			c.mu.Lock()
			c.queue, c.queued, c.writing = nil, 0, false
			if c.drained != nil {
				close(c.drained)
				c.drained = nil
			}
			c.mu.Unlock()
			if first {
				go c.closeSocket(reason)
			}
			return
		}
		c.mu.Lock()
		rest := copy(c.queue, c.queue[n:])
		clear(c.queue[rest:]) // drop references to written frames
		c.queue = c.queue[:rest]
		c.mu.Unlock()
	}
}

// maxKeptBatch is the largest queue array (in frames, 32 bytes each) an
// idle connection keeps for reuse. Under fan-out load queues reach a few hundred
// frames between writes; dropping those slices made Send regrow them from
// nothing, which was a tenth of the relay's CPU in the profile.
const maxKeptBatch = 1024

var errWriteTimeout = errors.New("write timed out")

// slowCloseGrace is how long the close handshake with a client that does
// not read or does not answer may take; policyCloseGrace the same for a
// client closed for what it sent (or did not send) in time.
const (
	slowCloseGrace   = 250 * time.Millisecond
	policyCloseGrace = time.Second
)

// writeBatch frames the batch itself into the corked socket and uncorks:
// one write system call. The WebSocket library's per-message Write (a
// context-aware lock, a message writer reset, a flush into the cork) cost
// more CPU than the system call it batches (BENCHMARKS.md, "Profile"), so
// data frames bypass it; the library still writes its control frames
// through corkConn.Write.
func (c *conn) writeBatch(batch []hub.Frame) error {
	c.sock.cork()
	bytes := c.sock.appendFrames(batch)
	m := c.srv.metrics
	m.FramesOut.Add(float64(len(batch)))
	m.BytesOut.Add(float64(bytes))
	m.WriteBatch.Observe(float64(len(batch)))
	return c.sock.uncork(c.srv.cfg.WriteTimeout)
}

// closeWith closes the connection for reason; only the first call counts.
// The read loop then ends and the client leaves its channels.
func (c *conn) closeWith(reason protocol.CloseReason) {
	if c.markClosing(reason) {
		c.closeSocket(reason)
	}
}

// markClosing records reason and stops accepting frames. It reports whether
// this call was the first.
func (c *conn) markClosing(reason protocol.CloseReason) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing.Load() {
		return false
	}
	c.reason = uint8(reason)
	c.closing.Store(true)
	return true
}

// closeSocket ends the connection: a close frame with reason's code, or at
// once when the peer is gone or not answering.
func (c *conn) closeSocket(reason protocol.CloseReason) {
	if reason.Policy() {
		// Tell the client why first: its queued answers (rate_limited
		// among them) go out before the close frame, if they can soon.
		ctx, cancel := context.WithTimeout(context.Background(), policyCloseGrace)
		c.drain(ctx)
		cancel()
	}
	c.sock.endData()
	switch {
	case reason == protocol.CloseClientGone:
		c.ws.CloseNow()
	case reason == protocol.CloseSlowConsumer, reason == protocol.CloseWriteTimeout, reason == protocol.ClosePingTimeout:
		// The socket is likely full, or the peer silent: give the close
		// frame a moment to get through, then cut the connection, so the
		// client leaves its channels now rather than after the library's
		// 5 s handshake wait.
		c.sock.cut(slowCloseGrace)
		c.ws.Close(websocket.StatusCode(reason.Status()), reason.Text())
	case reason.Policy():
		// The peer may be an attacker that never answers the close: bound
		// the handshake so it holds nothing for long.
		c.sock.cut(policyCloseGrace)
		c.ws.Close(websocket.StatusCode(reason.Status()), reason.Text())
	default:
		c.ws.Close(websocket.StatusCode(reason.Status()), reason.Text())
	}
	c.wakeReader()
}

// wakeReader lets a parked connection see that its socket closed, so its
// end runs (a reader goroutine sees it by itself).
func (c *conn) wakeReader() {
	if c.sock.park != nil {
		c.sock.park.wake()
	}
}

func (c *conn) closeReason() protocol.CloseReason {
	c.mu.Lock()
	defer c.mu.Unlock()
	return protocol.CloseReason(c.reason)
}

// shutdown stops accepting frames, flushes what is queued, then closes
// with 1012 (service restart).
func (c *conn) shutdown(ctx context.Context) { c.drainClose(ctx, protocol.CloseServerRestart) }

// retire closes a connection that reached RELAY_MAX_CONNECTION_AGE as a
// drain does (flush, then 1012), so its client reconnects, possibly to
// another instance, before the platform cuts it.
func (c *conn) retire() {
	ctx, cancel := context.WithTimeout(context.Background(), c.srv.cfg.WriteTimeout)
	defer cancel()
	c.drainClose(ctx, protocol.CloseMaxAge)
}

// jittered returns age less up to a tenth of it, at random, so connections
// opened together do not all reconnect together.
func jittered(age time.Duration) time.Duration {
	return age - rand.N(age/10+1)
}

// drainClose stops accepting frames, flushes what is queued, then closes
// for reason.
func (c *conn) drainClose(ctx context.Context, reason protocol.CloseReason) {
	if !c.markClosing(reason) {
		return
	}
	c.drain(ctx)
	c.closeSocket(reason)
}

// drain waits until the write loop has written what is queued, or ctx
// ends. The connection must be closing, so nothing more is queued.
func (c *conn) drain(ctx context.Context) {
	c.mu.Lock()
	var wait chan struct{}
	if c.writing {
		if c.drained == nil {
			c.drained = make(chan struct{})
		}
		wait = c.drained
	}
	c.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
}

// keepalive pings the client and schedules the next ping (pingsched.go);
// a client that does not answer within the interval is dropped.
func (c *conn) keepalive() {
	interval := c.srv.cfg.PingInterval
	ctx, cancel := context.WithTimeout(context.Background(), interval)
	err := c.ws.Ping(ctx)
	cancel()
	if c.closing.Load() {
		return
	}
	if err != nil {
		c.log().Info("keepalive ping not answered; dropping client", "interval", interval)
		c.closeWith(protocol.ClosePingTimeout)
		return
	}
	c.srv.pings.add(c)
}

// readBufferBytes is the size of each connection's read buffer.
const readBufferBytes = 512

// parkedWriteBufferBytes is a parked connection's control-frame writer,
// the smallest bufio allows (48 bytes less per connection than 64): the
// relay's pings go out in one write, a close frame or a larger pong in two
// (header, then payload).
const parkedWriteBufferBytes = 16

// hijackWriter hands the WebSocket library a corkable socket, so the write
// loop decides when bytes reach the kernel.
type hijackWriter struct {
	http.ResponseWriter
	sock **corkConn
	br   **bufio.Reader // set to the reader handed to the library
	park **parkedReader // nil: no parking; else set to the reader when the socket can park
	p    *poller
}

func (h hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// net/http may have left its read deadline (RELAY_HTTP_READ_TIMEOUT)
	// on the socket: a WebSocket lives longer than one request.
	nc.SetDeadline(time.Time{})
	cc := &corkConn{Conn: nc}
	*h.sock = cc
	// Bytes the client sent early (a frame right behind the upgrade
	// request) are read first through cc, so they too pass the message
	// limits: in net/http's 4 KB buffer, a whole unfinished message would
	// be held outside the unfinished-messages budget.
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		b := bytes.Clone(early)
		cc.early = &b
	}
	if h.park != nil {
		// A parked connection reads through its parkedReader, which
		// borrows a buffer only while it reads; the bufio.Reader the
		// library requires above it is the smallest bufio allows.
		if pr := newParkedReader(h.p, nc); pr != nil {
			*h.park, cc.park = pr, pr
			*h.br = bufio.NewReaderSize(cc, 16)
			return cc, bufio.NewReadWriter(*h.br, bufio.NewWriterSize(cc, parkedWriteBufferBytes)), nil
		}
	}
	// The WebSocket library reads through this buffer for the life of the
	// connection. net/http's is 4 KB; readBufferBytes still takes a couple
	// of small messages per read system call and saves 3.5 KB per
	// connection (larger payloads are read straight into the message).
	*h.br = bufio.NewReaderSize(cc, readBufferBytes)
	// A small write buffer: corked writes are gathered in corkConn, and the
	// only uncorked writes are control frames (at most 127 bytes).
	return cc, bufio.NewReadWriter(*h.br, bufio.NewWriterSize(cc, 256)), nil
}

// corkConn gathers writes while corked and sends them in one system call
// when uncorked. Writes while not corked (pongs, close frames) go straight
// through.
type corkConn struct {
	net.Conn
	park   *parkedReader // the connection's parked reader, or nil
	mu     sync.Mutex
	corked bool
	buf    *[]byte      // gathered while corked, from corkBufs; nil otherwise
	cutAt  atomic.Int64 // unix nanoseconds after which writes fail; 0: none

	dataEnded atomic.Bool // the close frame is on its way: no more data frames

	// While the read loop is inside a message (inMessage), a read from the
	// network goes through owner.readMidMessage (limits.go), which bounds
	// how long and how many bytes an unfinished message may hold.
	inMessage atomic.Bool
	owner     *conn

	// Bytes net/http read past the upgrade request, read first; nil
	// nearly always, so a pointer (8 bytes, not a slice's 24), like buf:
	// corkConn takes 80 bytes.
	early *[]byte
}

// Read reads the network, through the message limits mid-message.
//
// On a parked connection it reads through the parked reader (which applies
// the message limits to its own network reads): the library reads the
// connection it was handed, through a bufio.Reader it resets onto it.
func (c *corkConn) Read(p []byte) (int, error) {
	if c.park != nil {
		return c.park.Read(p)
	}
	if c.early != nil {
		return c.readEarly(p)
	}
	if c.inMessage.Load() && c.owner != nil {
		return c.owner.readMidMessage(c.Conn, p)
	}
	return c.Conn.Read(p)
}

// readEarly returns bytes the client sent with its upgrade request,
// charged mid-message like bytes from the network.
func (c *corkConn) readEarly(p []byte) (int, error) {
	n := c.takeEarly(p)
	if c.inMessage.Load() && c.owner != nil && !c.owner.closing.Load() {
		return c.owner.chargeUnfinished(n)
	}
	return n, nil
}

// takeEarly moves the early bytes it can into p; c.early must be set.
func (c *corkConn) takeEarly(p []byte) int {
	n := copy(p, *c.early)
	if *c.early = (*c.early)[n:]; len(*c.early) == 0 {
		c.early = nil
	}
	return n
}

// cut makes every read and write, including ones blocked now, fail after
// d.
func (c *corkConn) cut(d time.Duration) {
	at := time.Now().Add(d)
	c.cutAt.Store(at.UnixNano())
	c.Conn.SetDeadline(at)
}

var corkBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	if c.park != nil {
		c.park.beforeBlockingWrite()
	}
	return c.Conn.Write(p)
}

// appendFrames appends batch as unmasked, final WebSocket data frames to
// the corked buffer, unless endData was called, and returns the payload
// bytes it appended.
func (c *corkConn) appendFrames(batch []hub.Frame) (bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dataEnded.Load() {
		return 0
	}
	b := *c.buf
	for _, f := range batch {
		b = appendFrameHeader(b, f.Binary, len(f.Data))
		b = append(b, f.Data...)
		bytes += len(f.Data)
	}
	*c.buf = b
	return bytes
}

// endData stops appendFrames for good. closeSocket calls it before the
// library writes the close frame: an appendFrames that has not seen the
// flag holds mu, which the close frame's write needs, so no data frame can
// follow the close frame. It does not take mu itself, so it never waits
// behind a write blocked on a full socket.
func (c *corkConn) endData() { c.dataEnded.Store(true) }

// appendFrameHeader appends the header of an unmasked, final server frame
// of n payload bytes (RFC 6455 section 5.2).
func appendFrameHeader(b []byte, isBinary bool, n int) []byte {
	op := byte(0x1) // text
	if isBinary {
		op = 0x2
	}
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		return binary.BigEndian.AppendUint64(append(b, 127), uint64(n))
	}
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	if c.buf == nil {
		c.buf = corkBufs.Get().(*[]byte)
		*c.buf = (*c.buf)[:0]
	}
	c.mu.Unlock()
}

// uncork writes what was gathered, within timeout (0: drop it instead).
func (c *corkConn) uncork(timeout time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	var err error
	if timeout > 0 && c.buf != nil && len(*c.buf) > 0 {
		deadline := time.Now().Add(timeout)
		if cut := c.cutAt.Load(); cut != 0 {
			deadline = time.Unix(0, cut)
		}
		c.Conn.SetWriteDeadline(deadline)
		_, err = c.Conn.Write(*c.buf)
		if c.cutAt.Load() == 0 {
			c.Conn.SetWriteDeadline(time.Time{})
		}
		if err != nil { // errors.As's target escapes: only on the error path
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				err = errWriteTimeout
			}
		}
	}
	if b := c.buf; b != nil {
		c.buf = nil
		if cap(*b) <= 1<<20 {
			*b = (*b)[:0]
			corkBufs.Put(b) // the pointer it came as: putting &slice would allocate a header per write
		}
	}
	return err
}
