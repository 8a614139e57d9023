package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opCont  = 0x0
	opText  = 0x1
	opBin   = 0x2
	opClose = 0x8
	opPing  = 0x9
	opPong  = 0xA
)

// wsGUID is the fixed string RFC 6455 appends to Sec-WebSocket-Key.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// clientKey is the Sec-WebSocket-Key every bench client sends. The key only
// proves the server speaks WebSocket; it need not be random for a load test.
const clientKey = "cmVsYXktYmVuY2gta2V5MQ=="

// errClosed reports that the peer sent a close frame.
var errClosed = errors.New("websocket closed by peer")

// wsConn is a minimal client-side WebSocket connection: the hot read path
// peeks frames straight out of a bufio.Reader without copying, and writes are
// pre-framed byte slices so a batch of messages costs one write syscall.
//
// Client frames are masked with the all-zero key: RFC 6455 requires a mask but
// not a random one from a non-browser client, and a zero key makes masking a
// no-op, so the generator spends no CPU on it.
type wsConn struct {
	c     net.Conn
	br    *bufio.Reader
	pend  int    // bytes of the last returned frame still to discard
	fresh bool   // the last readMessage started on an empty buffer (new data from the kernel)
	frag  []byte // reassembly buffer for fragmented or oversized messages

	server bool // server side: control frames go out unmasked

	wmu sync.Mutex // guards writes (pong replies race with the owner's sends)
	ctl []byte     // scratch for control frames, under wmu
}

// dialWS opens a TCP connection with d to addr (host:port, loopback only;
// the caller checks) and performs the WebSocket handshake for path, with an
// Origin header when origin is set (the PHP DRC server refuses a handshake
// without one; the relay and the limit server need none).
func dialWS(ctx context.Context, d *net.Dialer, addr, path, origin string, rbuf int) (*wsConn, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + clientKey +
		"\r\nSec-WebSocket-Version: 13\r\n"
	if origin != "" {
		req += "Origin: " + origin + "\r\n"
	}
	req += "\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake write: %w", err)
	}
	if rbuf < 256 {
		rbuf = 256
	}
	br := bufio.NewReaderSize(c, rbuf)
	status, err := br.ReadSlice('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("handshake read: %w", err)
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 101")) {
		c.Close()
		return nil, fmt.Errorf("handshake refused: %q", bytes.TrimSpace(status))
	}
	accept := ""
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("handshake headers: %w", err)
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Sec-WebSocket-Accept")) {
			accept = string(bytes.TrimSpace(v))
		}
	}
	if accept != acceptKey(clientKey) {
		c.Close()
		return nil, fmt.Errorf("handshake: bad Sec-WebSocket-Accept %q", accept)
	}
	_ = c.SetDeadline(time.Time{})
	return &wsConn{c: c, br: br}, nil
}

// acceptKey computes Sec-WebSocket-Accept for a Sec-WebSocket-Key.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// appendFrame appends one frame with opcode op and payload p. When masked is
// true the frame carries the all-zero masking key (client to server).
func appendFrame(b []byte, op byte, p []byte, masked bool) []byte {
	var m byte
	if masked {
		m = 0x80
	}
	n := len(p)
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xFFFF:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if masked {
		b = append(b, 0, 0, 0, 0)
	}
	return append(b, p...)
}

// write sends pre-framed bytes in one call.
func (w *wsConn) write(b []byte) error {
	w.wmu.Lock()
	_, err := w.c.Write(b)
	w.wmu.Unlock()
	return err
}

// writeControl sends a control frame (ping, pong, close).
func (w *wsConn) writeControl(op byte, p []byte) error {
	w.wmu.Lock()
	w.ctl = appendFrame(w.ctl[:0], op, p, !w.server)
	_, err := w.c.Write(w.ctl)
	w.wmu.Unlock()
	return err
}

// writeText sends one masked text frame built into the caller's scratch.
func (w *wsConn) writeText(scratch *[]byte, p []byte) error {
	*scratch = appendFrame((*scratch)[:0], opText, p, true)
	return w.write(*scratch)
}

// readMessage returns the next data message. The payload is valid only until
// the next call. Pings are answered, pongs skipped, a close frame ends with
// errClosed. Payloads that fit the read buffer are returned without copying.
func (w *wsConn) readMessage() (op byte, payload []byte, err error) {
	if w.pend > 0 {
		_, _ = w.br.Discard(w.pend)
		w.pend = 0
	}
	w.fresh = w.br.Buffered() == 0
	var first byte
	fragmented := false
	for {
		h, err := w.br.Peek(2)
		if err != nil {
			return 0, nil, err
		}
		fin := h[0]&0x80 != 0
		fop := h[0] & 0x0F
		masked := h[1]&0x80 != 0
		n := uint64(h[1] & 0x7F)
		hl := 2
		switch n {
		case 126:
			hl = 4
		case 127:
			hl = 10
		}
		if masked {
			hl += 4
		}
		h, err = w.br.Peek(hl)
		if err != nil {
			return 0, nil, err
		}
		switch n {
		case 126:
			n = uint64(binary.BigEndian.Uint16(h[2:4]))
		case 127:
			n = binary.BigEndian.Uint64(h[2:10])
		}
		var mask [4]byte
		if masked {
			copy(mask[:], h[hl-4:hl])
		}
		_, _ = w.br.Discard(hl)
		if n > 1<<26 {
			return 0, nil, fmt.Errorf("frame of %d bytes is too large", n)
		}
		ln := int(n)
		var p []byte
		inPlace := ln <= w.br.Size() && !fragmented && fin && fop < opClose
		if inPlace {
			p, err = w.br.Peek(ln)
			if err != nil {
				return 0, nil, err
			}
			w.pend = ln
		} else {
			buf := make([]byte, ln)
			if _, err := io.ReadFull(w.br, buf); err != nil {
				return 0, nil, err
			}
			p = buf
		}
		if masked {
			// Peeked bytes belong to the bufio buffer and are discarded
			// after use, so unmasking them in place is safe.
			for i := range p {
				p[i] ^= mask[i&3]
			}
		}
		switch fop {
		case opPing:
			if err := w.writeControl(opPong, p); err != nil {
				return 0, nil, err
			}
			continue
		case opPong:
			continue
		case opClose:
			return opClose, p, errClosed
		}
		if fin && !fragmented {
			return fop, p, nil
		}
		if !fragmented {
			first = fop
			fragmented = true
			w.frag = w.frag[:0]
		}
		w.frag = append(w.frag, p...)
		if w.pend > 0 {
			_, _ = w.br.Discard(w.pend)
			w.pend = 0
		}
		if fin {
			return first, w.frag, nil
		}
	}
}

// close sends a close frame (best effort) and closes the socket.
func (w *wsConn) close() {
	_ = w.c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_ = w.writeControl(opClose, []byte{0x03, 0xE8})
	_ = w.c.Close()
}
