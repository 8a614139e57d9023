package relay_test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/relaytest"
)

// rawConn is a WebSocket client written frame by frame, for input no
// WebSocket library would send: unfinished messages, silence to pings, bad
// framing.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
	// ignore, when set, drops data messages that are not answers to
	// this connection (notifications about other members).
	ignore func(string) bool
}

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opCont   = 0x0
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// rawDial opens a WebSocket to r from local (an address such as guestAddr)
// with a hand-written handshake.
func rawDial(t *testing.T, r *relaytest.Relay, local string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", r.Addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", r.Addr)
	br := bufio.NewReader(nc)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	nc.SetReadDeadline(time.Time{})
	return &rawConn{t: t, nc: nc, br: br}
}

// frame returns one client frame: masked, with the given FIN bit, opcode
// and payload.
func frame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xFFFF:
		b = append(b, 0x80|126, byte(n>>8), byte(n))
	default:
		b = binary.BigEndian.AppendUint64(append(b, 0x80|127), uint64(n))
	}
	key := [4]byte{0x11, 0x22, 0x33, 0x44}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// write sends bytes as they are; false when the relay has closed.
func (c *rawConn) write(b []byte) bool {
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.nc.Write(b)
	return err == nil
}

// send writes one whole text message.
func (c *rawConn) send(s string) { c.write(frame(true, opText, []byte(s))) }

// readFrame reads one server frame within d.
func (c *rawConn) readFrame(d time.Duration) (op byte, payload []byte, err error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var x [2]byte
		if _, err := io.ReadFull(c.br, x[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(x[:]))
	case 127:
		var x [8]byte
		if _, err := io.ReadFull(c.br, x[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(x[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return h[0] & 0x0F, payload, err
}

// next returns the next data message within 5 s, skipping pings.
func (c *rawConn) next() string {
	c.t.Helper()
	for {
		op, p, err := c.readFrame(5 * time.Second)
		if err != nil {
			c.t.Fatalf("no message: %v", err)
		}
		switch op {
		case opText, opBinary:
			if c.ignore != nil && c.ignore(string(p)) {
				continue
			}
			return string(p)
		case opClose:
			c.t.Fatalf("closed while waiting for a message: %q", p)
		}
	}
}

// closeCode reads until the relay's close frame and returns its code and
// reason, or -1 when the connection ended without one, within d.
func (c *rawConn) closeCode(d time.Duration) (int, string) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for {
		op, p, err := c.readFrame(time.Until(deadline))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatalf("connection still open after %v", d)
		}
		if err != nil {
			return -1, err.Error()
		}
		if op == opClose {
			if len(p) < 2 {
				return 1005, ""
			}
			return int(binary.BigEndian.Uint16(p)), string(p[2:])
		}
	}
}

// joinRaw joins (name, "p") with tok and returns the JOINED frame.
func (c *rawConn) joinRaw(name, tok string) string {
	c.t.Helper()
	c.send(fmt.Sprintf(`{"cmd":"JOIN","channel":%q,"protocol":"p","token":%q}`, name, tok))
	got := c.next()
	if !strings.Contains(got, `"cmd":"JOINED"`) {
		c.t.Fatalf("join: %s", got)
	}
	return got
}
