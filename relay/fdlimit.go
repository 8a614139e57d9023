package relay

import (
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relay-project/relay/relay/internal/metrics"
)

// fdLogEvery is how often the descriptor condition is logged while it
// lasts: once per interval, not once per refused connection.
const fdLogEvery = 10 * time.Second

// fdGuard keeps descriptor headroom. It counts the connections its
// listener accepted and has not seen closed; with the descriptors open when
// it started, that is the process's use. WebSockets are refused while fewer
// than RELAY_FD_RESERVE remain, so the last descriptors serve probes,
// /metrics and the HTTP API; at the limit itself, accept errors wait and
// are logged once per interval instead of every second by net/http.
type fdGuard struct {
	log     *slog.Logger
	limit   int // the soft RLIMIT_NOFILE; 0 when unknown (no guard)
	reserve int
	base    int // descriptors open when the guard started
	open    atomic.Int64
	silent  prometheus.Counter // connections whose first read timed out with nothing read

	// unix nanoseconds of the last log line, for each condition
	lastRefusal, lastExhausted atomic.Int64
}

// GuardListener wraps ln so the relay keeps file descriptors for its probes:
// it counts the connections ln accepts, refuses new WebSockets with 503 while
// fewer than RELAY_FD_RESERVE descriptors are left, and when accepting fails
// for lack of descriptors it waits and retries, logging the condition once
// per 10 s. Call it once, for the main listener (and the metrics listener,
// which shares the count), before serving; cmd/relay does.
func (s *Server) GuardListener(ln net.Listener) net.Listener {
	s.fdOnce.Do(func() {
		s.fds = &fdGuard{log: s.log, limit: fileLimit(), reserve: s.cfg.FDReserve, base: openFiles(),
			silent: s.metrics.Refused.WithLabelValues(metrics.RefusedSilent)}
		if s.fds.limit > 0 {
			s.log.Info("file descriptors", "limit", s.fds.limit, "open", s.fds.base, "reserve", s.fds.reserve)
		}
	})
	return &guardedListener{Listener: ln, g: s.fds}
}

// roomForWebSocket reports whether a new WebSocket leaves the reserve
// intact. A nil guard (a listener not wrapped) always has room.
func (g *fdGuard) roomForWebSocket() bool {
	if g == nil || g.limit == 0 {
		return true
	}
	used := g.base + int(g.open.Load())
	if used < g.limit-g.reserve {
		return true
	}
	g.logOnce(&g.lastRefusal, "file descriptors nearly exhausted: refusing new WebSockets", used)
	return false
}

// logOnce logs msg unless *last says it did in the last fdLogEvery.
func (g *fdGuard) logOnce(last *atomic.Int64, msg string, used int) {
	now := time.Now().UnixNano()
	prev := last.Load()
	if now-prev < int64(fdLogEvery) || !last.CompareAndSwap(prev, now) {
		return
	}
	g.log.Warn(msg, "open", used, "limit", g.limit, "reserve", g.reserve)
}

type guardedListener struct {
	net.Listener
	g *fdGuard
}

// Accept waits out running out of descriptors (EMFILE, ENFILE): the
// connection stays in the kernel's backlog until one is freed.
func (l *guardedListener) Accept() (net.Conn, error) {
	wait := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.g.open.Add(1)
			return &countedConn{Conn: c, g: l.g}, nil
		}
		if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
			return nil, err
		}
		l.g.logOnce(&l.g.lastExhausted, "file descriptors exhausted: cannot accept connections", l.g.base+int(l.g.open.Load()))
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}

// countedConn gives its descriptor back to the count once, when closed.
// It also counts a connection that sent nothing before its first read
// timed out: on a new connection the only deadline is net/http's header
// timeout (RELAY_HTTP_HEADER_TIMEOUT), so that is a silent connection
// closed by it.
type countedConn struct {
	net.Conn
	g      *fdGuard
	closed sync.Once
	spoke  atomic.Bool // a read has returned bytes
}

func (c *countedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.spoke.Load() {
		if n > 0 {
			c.spoke.Store(true)
		} else if errors.Is(err, os.ErrDeadlineExceeded) && c.spoke.CompareAndSwap(false, true) {
			c.g.silent.Inc()
		}
	}
	return n, err
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.closed.Do(func() { c.g.open.Add(-1) })
	return err
}

// SyscallConn exposes the socket under the wrapper, for read parking
// (readpark_linux.go), which waits on the descriptor itself.
func (c *countedConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("relay: connection has no descriptor")
}

// CloseWrite keeps net/http's graceful close (half-close after the
// response) working through the wrapper.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// openFiles counts this process's open descriptors (Linux); elsewhere it
// assumes a handful.
func openFiles() int {
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		return len(ents)
	}
	return 16
}
