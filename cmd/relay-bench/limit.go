package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// limitServer is the machine's ceiling: a WebSocket server that answers JOIN
// and GRANT with canned frames and turns every other message into one
// frame, encoded once and shared by every joined socket's queue. No
// validation, no channels, no JSON decoding, no copy per recipient: each
// socket's writer hands its whole queue to the kernel in one writev. Running
// the same scenario against it and the relay shows what fraction of the
// machine the relay achieves.
type limitServer struct {
	ln     net.Listener
	nextID atomic.Int64
	tokens atomic.Int64

	mu      sync.Mutex
	members []*limitConn // copy-on-write; readers load membersP
	snap    atomic.Pointer[[]*limitConn]

	wg sync.WaitGroup
}

// limitConn is one socket of the limit server.
type limitConn struct {
	ws      *wsConn
	id      int64
	mu      sync.Mutex
	pending [][]byte // shared, immutable frames waiting to be written
	queued  int
	sig     chan struct{}
	bad     atomic.Bool
}

// limitQueueCap closes a socket whose queue grows past it (the generator's
// window keeps queues far below it).
const limitQueueCap = 64 << 20

// startLimitServer listens on addr (loopback) and serves until ctx ends.
func startLimitServer(ctx context.Context, addr string) (*limitServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("limit server: %w", err)
	}
	s := &limitServer{ln: ln}
	empty := []*limitConn{}
	s.snap.Store(&empty)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-ctx.Done()
		ln.Close()
	}()
	s.wg.Add(1)
	go s.acceptLoop(ctx)
	return s, nil
}

// Addr is the listening address.
func (s *limitServer) Addr() string { return s.ln.Addr().String() }

// Wait returns after the server has stopped accepting.
func (s *limitServer) Wait() { s.wg.Wait() }

func (s *limitServer) acceptLoop(ctx context.Context) {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.serve(ctx, c)
	}
}

func (s *limitServer) serve(ctx context.Context, c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	key := ""
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(bytes.TrimSpace(k), []byte("Sec-WebSocket-Key")) {
			key = string(bytes.TrimSpace(v))
		}
	}
	if key == "" {
		_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if _, err := io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
		acceptKey(key)+"\r\n\r\n"); err != nil {
		return
	}
	lc := &limitConn{ws: &wsConn{c: c, br: br, server: true}, id: s.nextID.Add(1), sig: make(chan struct{}, 1)}
	done := make(chan struct{})
	go lc.writeLoop(done)
	defer func() {
		close(done)
		s.remove(lc)
	}()
	var prefix []byte
	for {
		if ctx.Err() != nil {
			return
		}
		_, p, err := lc.ws.readMessage()
		if err != nil {
			return
		}
		switch cmd := cmdOf(p); cmd {
		case "JOIN":
			s.add(lc)
			b := []byte(`{"channel":1,"success":true,"cmd":"JOINED","from":0,"id":`)
			b = strconv.AppendInt(b, lc.id, 10)
			b = append(b, `,"info":{"auth":false,"mode":0,"extra":{}},"channelname":"bench","protocol":"bench","clients":{}}`...)
			lc.enqueue(appendFrame(nil, opText, b, false))
		case "GRANT":
			b := []byte(`{"channel":0,"success":true,"cmd":"GRANTED","token":"limit-`)
			b = strconv.AppendInt(b, s.tokens.Add(1), 10)
			b = append(b, `","channelname":"bench","protocol":"bench"}`...)
			lc.enqueue(appendFrame(nil, opText, b, false))
		case "LEAVE", "":
		default:
			// Re-head the message the way the relay delivers it so both
			// servers send the same bytes: the relay's fixed fields, then
			// the sender's fields from "seq" on.
			body := p
			if i := bytes.Index(p, []byte(`,"seq":`)); i >= 0 {
				prefix = append(prefix[:0], `{"channel":1,"success":true,"from":`...)
				prefix = strconv.AppendInt(prefix, lc.id, 10)
				prefix = append(prefix, `,"cmd":"`...)
				prefix = append(prefix, cmd...)
				prefix = append(prefix, '"')
				prefix = append(prefix, p[i:]...)
				body = prefix
			}
			frame := appendFrame(make([]byte, 0, len(body)+10), opText, body, false)
			for _, m := range *s.snap.Load() {
				m.enqueue(frame)
			}
		}
	}
}

// cmdOf returns the value of the first "cmd" key, scanning without decoding.
func cmdOf(p []byte) string {
	i := bytes.Index(p, []byte(`"cmd":"`))
	if i < 0 {
		return ""
	}
	rest := p[i+7:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

func (s *limitServer) add(lc *limitConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.members {
		if m == lc {
			return
		}
	}
	s.members = append(s.members, lc)
	snap := append([]*limitConn(nil), s.members...)
	s.snap.Store(&snap)
}

func (s *limitServer) remove(lc *limitConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.members {
		if m == lc {
			s.members = append(s.members[:i], s.members[i+1:]...)
			snap := append([]*limitConn(nil), s.members...)
			s.snap.Store(&snap)
			return
		}
	}
}

// enqueue queues a shared frame and wakes the socket's writer.
func (lc *limitConn) enqueue(f []byte) {
	if lc.bad.Load() {
		return
	}
	lc.mu.Lock()
	if lc.queued+len(f) > limitQueueCap {
		lc.mu.Unlock()
		lc.bad.Store(true)
		lc.ws.c.Close()
		return
	}
	lc.pending = append(lc.pending, f)
	lc.queued += len(f)
	lc.mu.Unlock()
	select {
	case lc.sig <- struct{}{}:
	default:
	}
}

// writeLoop writes everything queued in one writev per wake-up.
func (lc *limitConn) writeLoop(done <-chan struct{}) {
	var spare [][]byte
	for {
		select {
		case <-lc.sig:
		case <-done:
			return
		}
		lc.mu.Lock()
		batch := lc.pending
		lc.pending, lc.queued = spare[:0], 0
		lc.mu.Unlock()
		if len(batch) == 0 {
			spare = batch
			continue
		}
		lc.ws.wmu.Lock()
		bufs := net.Buffers(batch)
		_, err := bufs.WriteTo(lc.ws.c)
		lc.ws.wmu.Unlock()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				lc.ws.c.Close()
			}
			return
		}
		clear(batch)
		spare = batch[:0]
	}
}
