package relay

import (
	"errors"

	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/protocol"
)

// Read parking (readpark_linux.go): an idle connection holds no goroutine.
// Its socket waits on an epoll set (one per process, shared by every
// Server); when it becomes readable, a worker from a bounded pool reads
// the messages waiting there through the WebSocket library (which still
// parses frames and answers control frames) and parks the connection
// again. Other systems, and RELAY_READ_PARKING=false, keep one reader
// goroutine per connection (conn.readLoop). Both call conn.readMessage for
// each message.

// errParked is what the parked reader returns to the WebSocket library when
// the socket has nothing more to read and the library waits between
// messages: the library's Reader fails with it at a frame boundary, having
// consumed nothing, and the connection parks until the socket is readable.
var errParked = errors.New("relay: nothing to read; connection parked")

// parkReadBufferBytes is the buffer a parked reader borrows while it reads
// (returned when the connection parks). The library reads through a
// minimal bufio.Reader above it, which is all a parked connection keeps.
// The size of a reader goroutine's buffer (readBufferBytes): the bytes read
// with a message's header are not charged to the unfinished-messages budget,
// so both readers charge alike.
const parkReadBufferBytes = readBufferBytes

// frameTracker follows WebSocket frame boundaries in the byte stream handed
// to the library, so the parked reader knows whether the library, asking
// for more bytes that have not arrived, is between messages (park) or in
// the middle of a frame or a fragmented message (a slow or hostile sender:
// wait for the rest off the pool).
type frameTracker struct {
	hdr        [14]byte // the current frame's header bytes seen so far
	hn         uint8    // len of hdr in use; 0 between frames
	fragmented bool     // a data message's final frame has not been seen (beside hn: 24 bytes, not 32)
	payload    uint64   // payload bytes of the current frame not yet seen
}

// feed advances the tracker over b, the next bytes handed to the library.
func (t *frameTracker) feed(b []byte) {
	for len(b) > 0 {
		if t.payload > 0 {
			k := uint64(len(b))
			if k > t.payload {
				k = t.payload
			}
			t.payload -= k
			b = b[k:]
			continue
		}
		t.hdr[t.hn] = b[0]
		t.hn++
		b = b[1:]
		if t.hn < 2 {
			continue
		}
		need := uint8(2)
		switch t.hdr[1] & 0x7f {
		case 126:
			need += 2
		case 127:
			need += 8
		}
		if t.hdr[1]&0x80 != 0 {
			need += 4 // masking key
		}
		if t.hn < need {
			continue
		}
		switch n := t.hdr[1] & 0x7f; n {
		case 126:
			t.payload = uint64(t.hdr[2])<<8 | uint64(t.hdr[3])
		case 127:
			for _, x := range t.hdr[2:10] {
				t.payload = t.payload<<8 | uint64(x)
			}
		default:
			t.payload = uint64(n)
		}
		if op := t.hdr[0] & 0x0f; op < 8 { // a data or continuation frame
			t.fragmented = t.hdr[0]&0x80 == 0
		}
		t.hn = 0
	}
}

// betweenMessages reports whether the bytes seen so far end exactly at the
// end of a message (or of a control frame between messages).
func (t *frameTracker) betweenMessages() bool {
	return t.hn == 0 && t.payload == 0 && !t.fragmented
}

// run serves a decoded request (serveRequest). On a parked connection, a
// request that may wait (mayWait) is handed off the pool first: the step
// gives up its pool worker (a replacement starts if others wait) and goes
// on as the connection's own goroutine until the connection parks again,
// so the connection's next message is still read only once this one is
// done, and sixteen slow plugin calls or NATS round trips cannot hold up
// every other connection.
func (c *conn) run(req *protocol.Request, binary bool) {
	if c.sock.park != nil && c.srv.mayWait(int(c.kind)) {
		c.sock.park.leavePool()
	}
	c.serveRequest(req, binary)
}

// mayWait reports whether a request of kind may wait on something other
// than the CPU: a plugin call (up to RELAY_PLUGIN_TIMEOUT) or, in cluster
// mode, a round trip to NATS (the shared token store, member records, a
// remote member's SET_EXTRA). A broadcast without a filter-message plugin
// only publishes (which never waits), so it stays on the pool.
func (s *Server) mayWait(kind int) bool {
	switch kind {
	case kindMessage:
		return s.plugins.Enabled(plugin.FilterMessage)
	case kindJoin:
		return s.node != nil || s.plugins.Enabled(plugin.AuthorizeJoin)
	case kindGrant:
		return s.node != nil || s.plugins.Enabled(plugin.OnTokenCreate)
	case kindSetExtra, kindLeave:
		return s.node != nil
	}
	return false
}
