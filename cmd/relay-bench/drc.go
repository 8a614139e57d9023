package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// benchProtocol is the DRC protocol name every bench channel uses.
const benchProtocol = "bench"

// benchCmd is the application command of every broadcast the generator sends.
const benchCmd = "B"

// target is one server under test, reached over loopback.
type target struct {
	name string // "relay", "relay+plugin", "limit"
	addr string // host:port on loopback
	path string // HTTP path of the WebSocket endpoint
	pid  int    // server process id for /proc readings; 0 = unknown

	origin string // Origin header of every handshake (-origin); "" = none
	proto  string // protocol of a -url target (-peer): "drc" ("" too) or "centrifugo"
	apiKey string // centrifugo: X-API-Key of its HTTP API; "" = insecure API

	// Cluster mode: the other instances members are spread over (the
	// publisher stays on this one), and the NATS server they share.
	peers   []target
	nats    natsStats
	natsPID int
}

// instances is how many relay instances the target spreads members over.
func (t target) instances() int { return 1 + len(t.peers) }

// at is the instance member i connects to: round robin over all of them,
// so with three instances a third of the members share the publisher's.
func (t target) at(i int) target {
	if k := i % t.instances(); k > 0 {
		return t.peers[k-1]
	}
	return t
}

// pids are the server processes of every instance.
func (t target) pids() []int {
	ps := []int{t.pid}
	for _, p := range t.peers {
		ps = append(ps, p.pid)
	}
	return ps
}

// cpu is the CPU time every instance has used (the NATS server apart).
func (t target) cpu() (time.Duration, error) {
	var sum time.Duration
	for _, pid := range t.pids() {
		d, err := serverCPU(pid)
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// natsNow reads the NATS counts and the NATS server's CPU; zero without NATS.
func (t target) natsNow() (natsCounts, time.Duration) {
	if t.nats == nil {
		return natsCounts{}, 0
	}
	n, _ := t.nats()
	d, _ := serverCPU(t.natsPID)
	return n, d
}

// ctlFrame is the subset of server frames the control path reads. The hot
// path never decodes JSON; it scans for "seq" and "t" instead.
type ctlFrame struct {
	Channel     int64   `json:"channel"`
	Success     bool    `json:"success"`
	Cmd         string  `json:"cmd"`
	ID          int64   `json:"id"`
	Token       string  `json:"token"`
	ChannelName *string `json:"channelname"`
	Error       string  `json:"error"`
	ErrorCode   string  `json:"errorcode"`
}

// protoError is an error frame sent by the server.
type protoError struct{ code, text string }

func (e *protoError) Error() string { return "server error " + e.code + ": " + e.text }

// now returns the monotonic time since base in nanoseconds; messages carry it
// as their send time and receivers compute latency against it.
type clock struct{ base time.Time }

func (c clock) now() int64 { return int64(time.Since(c.base)) }

// seqKey precedes the sequence number in a delivered bench message.
const seqKey = `,"seq":`

// scanSeqTimeAt is scanSeqTime for a message whose seqKey is expected at
// offset at (the delivered prefix's length): one comparison instead of a
// search when it is there.
func scanSeqTimeAt(p []byte, at int) (seq, t int64, ok bool) {
	if at+len(seqKey) <= len(p) && string(p[at:at+len(seqKey)]) == seqKey {
		return seqTimeAfter(p, at+len(seqKey))
	}
	return scanSeqTime(p)
}

// seqTimeAfter parses `S,"t":T` at p[i:].
func seqTimeAfter(p []byte, i int) (seq, t int64, ok bool) {
	seq, j := parseInt(p, i)
	if j == i {
		return 0, 0, false
	}
	if j+5 > len(p) || string(p[j:j+5]) != `,"t":` {
		return seq, 0, true
	}
	t, _ = parseInt(p, j+5)
	return seq, t, true
}

// scanSeqTime extracts the "seq" and "t" numbers from a delivered bench
// message without decoding it. ok is false for any other frame.
func scanSeqTime(p []byte) (seq, t int64, ok bool) {
	head := p
	if len(head) > 160 {
		head = head[:160]
	}
	i := bytes.Index(head, []byte(`"seq":`))
	if i < 0 {
		return 0, 0, false
	}
	return seqTimeAfter(head, i+6)
}

// parseInt reads a non-negative decimal integer at b[i:], returning it and
// the index after its last digit.
func parseInt(b []byte, i int) (int64, int) {
	var v int64
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		v = v*10 + int64(b[i]-'0')
		i++
	}
	return v, i
}

// msgTemplate builds broadcasts whose delivered form is exactly size bytes:
// the server delivers {"channel":C,"success":true,"from":ID,"cmd":"B",
// "seq":S,"t":T,"p":"<pad>"} for the published
// {"cmd":"B","channel":C,"to":-1,"seq":S,"t":T,"p":"<pad>"}.
type msgTemplate struct {
	channel, from int64
	size          int
	fromLen       int
	pad           []byte
	scratch       []byte
}

func newMsgTemplate(channel, from int64, size int) *msgTemplate {
	pad := bytes.Repeat([]byte("x"), size+1)
	return &msgTemplate{channel: channel, from: from, size: size, pad: pad,
		fromLen: len(strconv.FormatInt(from, 10))}
}

// deliveredPrefix is what the server puts before "seq" in a delivery.
func (m *msgTemplate) deliveredPrefix() []byte {
	b := []byte(`{"channel":`)
	b = strconv.AppendInt(b, m.channel, 10)
	b = append(b, `,"success":true,"from":`...)
	b = strconv.AppendInt(b, m.from, 10)
	return append(b, `,"cmd":"`+benchCmd+`"`...)
}

// appendFrame appends one masked text frame carrying broadcast seq sent at t.
func (m *msgTemplate) appendFrame(dst []byte, seq, t int64) []byte {
	b := append(m.scratch[:0], `{"cmd":"`+benchCmd+`","channel":`...)
	b = strconv.AppendInt(b, m.channel, 10)
	b = append(b, `,"to":-1,"seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"t":`...)
	b = strconv.AppendInt(b, t, 10)
	b = append(b, `,"p":"`...)
	// Delivered length = published length - len(`"to":-1,`) (8)
	// + len(`"success":true,"from":ID,`) - the reordering keeps the rest.
	fixed := len(b) + 2 - 8 + len(`"success":true,"from":,`) + m.fromLen
	padLen := m.size - fixed
	if padLen < 0 {
		padLen = 0
	}
	if padLen > len(m.pad) {
		padLen = len(m.pad)
	}
	b = append(b, m.pad[:padLen]...)
	b = append(b, `"}`...)
	m.scratch = b
	return appendFrame(dst, opText, b, true)
}

// publisher is the authority client: it JOINs by loopback IP authority,
// mints grant tokens and publishes broadcasts. Its reader goroutine consumes
// everything the server sends it (its own broadcasts come back to it).
type publisher struct {
	ws      *wsConn
	id      int64
	channel int64
	name    string

	last   atomic.Int64 // highest own broadcast seq echoed back
	recv   atomic.Int64 // own broadcasts echoed back
	joins  atomic.Int64 // JOINED notifications for other members
	tokens chan string  // minted grant tokens
	ahead  chan struct{}
	wake   chan struct{} // poked by receivers as they make progress

	failOnce sync.Once
	err      error
	dead     chan struct{}
}

// newPublisher connects, joins channel name as an authority and starts the
// reader. ahead bounds how many grant tokens may be minted and not yet used.
func newPublisher(ctx context.Context, tgt target, name string, ahead int) (*publisher, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	ws, err := dialWS(ctx, d, tgt.addr, tgt.path, tgt.origin, 64<<10)
	if err != nil {
		return nil, err
	}
	if ahead < 1 {
		ahead = 1
	}
	p := &publisher{ws: ws, name: name, tokens: make(chan string, ahead), ahead: make(chan struct{}, ahead),
		wake: make(chan struct{}, 1), dead: make(chan struct{})}
	join, _ := json.Marshal(map[string]any{"cmd": "JOIN", "channel": name, "protocol": benchProtocol})
	var scratch []byte
	if err := ws.writeText(&scratch, join); err != nil {
		ws.close()
		return nil, fmt.Errorf("publisher join: %w", err)
	}
	id, ch, err := awaitJoined(ctx, ws)
	if err != nil {
		ws.close()
		return nil, fmt.Errorf("publisher join: %w", err)
	}
	p.id, p.channel = id, ch
	go p.readLoop()
	return p, nil
}

// awaitJoined reads until the joiner's own JOINED (the copy carrying
// channelname) and returns the client id and channel number. It scans
// instead of decoding: a join-rate run does this thousands of times a second.
func awaitJoined(ctx context.Context, ws *wsConn) (id, channel int64, err error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.c.SetReadDeadline(dl)
		defer ws.c.SetReadDeadline(time.Time{})
	}
	for {
		_, p, err := ws.readMessage()
		if err != nil {
			return 0, 0, err
		}
		if bytes.Contains(p, []byte(`"success":false`)) {
			var f ctlFrame
			if err := json.Unmarshal(p, &f); err != nil {
				return 0, 0, fmt.Errorf("bad frame %q: %w", p, err)
			}
			return 0, 0, &protoError{code: f.ErrorCode, text: f.Error}
		}
		if !bytes.Contains(p, []byte(`"cmd":"JOINED"`)) || !bytes.Contains(p, []byte(`"channelname":`)) {
			continue
		}
		ch, okc := intAfter(p, `"channel":`)
		id, oki := intAfter(p, `"id":`)
		if !okc || !oki {
			return 0, 0, fmt.Errorf("JOINED without channel or id: %q", p)
		}
		return id, ch, nil
	}
}

// intAfter parses the integer that follows the first occurrence of key.
func intAfter(p []byte, key string) (int64, bool) {
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return 0, false
	}
	v, j := parseInt(p, i+len(key))
	return v, j > i+len(key)
}

func (p *publisher) fail(err error) {
	p.failOnce.Do(func() {
		p.err = err
		close(p.dead)
	})
}

func (p *publisher) readLoop() {
	for {
		_, b, err := p.ws.readMessage()
		if err != nil {
			p.fail(fmt.Errorf("publisher connection: %w", err))
			return
		}
		if seq, _, ok := scanSeqTime(b); ok {
			p.recv.Add(1)
			if seq > p.last.Load() {
				p.last.Store(seq)
			}
			if seq&7 == 0 {
				p.poke()
			}
			continue
		}
		var f ctlFrame
		if err := json.Unmarshal(b, &f); err != nil {
			p.fail(fmt.Errorf("publisher got a bad frame %q: %w", b, err))
			return
		}
		switch {
		case !f.Success:
			p.fail(&protoError{code: f.ErrorCode, text: f.Error})
			return
		case f.Cmd == "GRANTED":
			p.tokens <- f.Token // never blocks: at most cap(ahead) are outstanding
		case f.Cmd == "JOINED":
			p.joins.Add(1)
		}
	}
}

// poke wakes a publisher waiting for window room.
func (p *publisher) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// mint sends total GRANT requests in the background, never more than
// cap(ahead) ahead of the tokens taken with take, so no token waits long
// enough to expire (grant tokens live 30 s).
func (p *publisher) mint(ctx context.Context, total int) {
	g, _ := json.Marshal(map[string]any{"cmd": "GRANT", "channel": p.name, "protocol": benchProtocol,
		"clientmode": 0, "extra": map[string]any{}})
	go func() {
		var buf []byte
		for sent := 0; sent < total; {
			select {
			case p.ahead <- struct{}{}:
			case <-ctx.Done():
				return
			case <-p.dead:
				return
			}
			buf = appendFrame(buf[:0], opText, g, true)
			sent++
			for sent < total && len(buf) < 16<<10 {
				select {
				case p.ahead <- struct{}{}:
					buf = appendFrame(buf, opText, g, true)
					sent++
					continue
				default:
				}
				break
			}
			if err := p.ws.write(buf); err != nil {
				p.fail(fmt.Errorf("publisher grant: %w", err))
				return
			}
		}
	}()
}

// take returns the next minted grant token.
func (p *publisher) take(ctx context.Context) (string, error) {
	select {
	case t := <-p.tokens:
		<-p.ahead
		return t, nil
	case <-p.dead:
		return "", p.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// broadcastOne publishes a single bench message with the given seq.
func (p *publisher) broadcastOne(seq int64, clk clock, size int) error {
	m := newMsgTemplate(p.channel, p.id, size)
	return p.ws.write(m.appendFrame(nil, seq, clk.now()))
}

// joinTimeout bounds one connect + JOIN.
const joinTimeout = 15 * time.Second

// joinMember connects and joins channel name as a receive-only member with a
// grant token ("ipauth": false so the loopback address does not make it an
// authority). It returns the connection after its own JOINED.
func joinMember(ctx context.Context, d *net.Dialer, tgt target, name, token string, rbuf int) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	ws, err := dialWS(ctx, d, tgt.addr, tgt.path, tgt.origin, rbuf)
	if err != nil {
		return nil, err
	}
	join := make([]byte, 0, 128+len(name)+len(token))
	join = append(join, `{"cmd":"JOIN","channel":`...)
	join = strconv.AppendQuote(join, name) // bench names and opaque tokens are printable ASCII
	join = append(join, `,"protocol":"`+benchProtocol+`","token":`...)
	join = strconv.AppendQuote(join, token)
	join = append(join, `,"ipauth":false}`...)
	var scratch []byte
	if err := ws.writeText(&scratch, join); err != nil {
		ws.close()
		return nil, fmt.Errorf("join: %w", err)
	}
	if _, _, err := awaitJoined(ctx, ws); err != nil {
		ws.close()
		return nil, fmt.Errorf("join: %w", err)
	}
	return ws, nil
}
