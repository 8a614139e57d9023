package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// minter is an authority connection that mints grant tokens for the others.
type minter struct {
	mu sync.Mutex
	ws *websocket.Conn
}

func dialMinter(ctx context.Context, s *soak) (*minter, error) {
	ws, err := dial(ctx, s, "127.0.0.1")
	if err != nil {
		return nil, fmt.Errorf("minter: %w", err)
	}
	return &minter{ws: ws}, nil
}

// token mints a grant token for channel ch with mode.
func (m *minter) token(ctx context.Context, ch, mode int) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	req := fmt.Sprintf(`{"cmd":"GRANT","channel":%q,"protocol":"soak","clientmode":%d,"extra":{"soak":true}}`, channelName(ch), mode)
	if err := send(ctx, m.ws, req); err != nil {
		return "", err
	}
	f, err := readFrame(ctx, m.ws, 5*time.Second)
	if err != nil {
		return "", err
	}
	if f.Cmd != "GRANTED" || f.Token == "" {
		return "", fmt.Errorf("GRANT answered %+v (is the minter's address an authority?)", f)
	}
	return f.Token, nil
}

// joinGuest dials from source and joins channel ch with a fresh token of
// mode, never as an authority by address.
func joinGuest(ctx context.Context, s *soak, source string, ch, mode int) (*websocket.Conn, frame, error) {
	tok, err := s.minter.token(ctx, ch, mode)
	if err != nil {
		return nil, frame{}, err
	}
	ws, err := dial(ctx, s, source)
	if err != nil {
		return nil, frame{}, err
	}
	req := fmt.Sprintf(`{"cmd":"JOIN","channel":%q,"protocol":"soak","token":%q,"ipauth":false}`, channelName(ch), tok)
	if err := send(ctx, ws, req); err != nil {
		ws.CloseNow()
		return nil, frame{}, err
	}
	f, err := readFrame(ctx, ws, 5*time.Second)
	if err != nil {
		ws.CloseNow()
		return nil, frame{}, err
	}
	if f.Cmd != "JOINED" || f.Clients == nil {
		ws.CloseNow()
		return nil, f, fmt.Errorf("JOIN answered %+v", f)
	}
	return ws, f, nil
}

// healthyMember is a receive-only member that must get every message of its
// channel's publisher, in order, and must never be closed.
type healthyMember struct {
	ws      *websocket.Conn
	channel int
	index   int
	first   atomic.Int64
	last    atomic.Int64
	gone    atomic.Bool
	closing atomic.Bool // the soak itself is closing it
}

func joinHealthy(ctx context.Context, s *soak, ch, i int) (*healthyMember, error) {
	ws, _, err := joinGuest(ctx, s, guestAddr(ch*s.o.members+i), ch, 0)
	if err != nil {
		return nil, err
	}
	return &healthyMember{ws: ws, channel: ch, index: i}, nil
}

func (hm *healthyMember) read(s *soak) {
	defer hm.gone.Store(true)
	who := fmt.Sprintf("healthy member %d of channel %d", hm.index, hm.channel)
	for {
		f, err := readFrame(context.Background(), hm.ws, time.Hour)
		if err != nil {
			if !hm.closing.Load() {
				s.fail("%s lost its connection: %v", who, err)
				s.closed(who, err)
			}
			return
		}
		if f.Success != nil && !*f.Success {
			s.fail("%s got an error frame it did not ask for: %s", who, f.ErrorCode)
			continue
		}
		if f.Cmd != "TICK" {
			continue // presence, churners' chat
		}
		s.received.Add(1)
		last := hm.last.Load()
		if last == 0 {
			hm.first.Store(f.Seq)
		} else if f.Seq != last+1 {
			s.fail("%s got message %d after %d", who, f.Seq, last)
		}
		hm.last.Store(f.Seq)
	}
}

// publisher is the authority that broadcasts numbered messages to one
// channel.
type publisher struct {
	ws      *websocket.Conn
	ch      int
	number  int64 // the channel's number on the publisher's connection
	seq     int64
	drained sync.WaitGroup
}

func startPublisher(ctx context.Context, s *soak, ch int) (*publisher, error) {
	ws, err := dial(ctx, s, "127.0.0.1")
	if err != nil {
		return nil, err
	}
	if err := send(ctx, ws, fmt.Sprintf(`{"cmd":"JOIN","channel":%q,"protocol":"soak"}`, channelName(ch))); err != nil {
		return nil, err
	}
	f, err := readFrame(ctx, ws, 5*time.Second)
	if err != nil || f.Cmd != "JOINED" || f.Clients == nil {
		return nil, fmt.Errorf("publisher JOIN: %+v %v", f, err)
	}
	p := &publisher{ws: ws, ch: ch, number: f.Channel}
	p.drained.Go(func() {
		// The publisher hears its own broadcasts and the presence of the
		// channel: read them so it is never a slow consumer.
		for {
			f, err := readFrame(context.Background(), ws, time.Hour)
			if err != nil {
				return
			}
			if f.Success != nil && !*f.Success {
				s.refused("publisher", f.ErrorCode)
				s.fail("publisher of channel %d refused: %s", ch, f.ErrorCode)
			}
		}
	})
	return p, nil
}

func (p *publisher) publish(ctx context.Context, s *soak) {
	pad := strings.Repeat("p", s.o.pad)
	every := time.Duration(float64(time.Second) / s.o.rate)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := p.seq + 1
		msg := fmt.Sprintf(`{"cmd":"TICK","channel":%d,"to":-1,"seq":%d,"pad":%q}`, p.number, next, pad)
		if err := send(context.Background(), p.ws, msg); err != nil {
			s.fail("publisher of channel %d could not send: %v", p.ch, err)
			return
		}
		p.seq = next
		s.published[p.ch].Store(next)
	}
}

func (p *publisher) wait() { p.drained.Wait() }

// joinSlow joins a member that never reads again.
func joinSlow(ctx context.Context, s *soak, i int) (*websocket.Conn, error) {
	ws, _, err := joinGuest(ctx, s, guestAddr(2000+i), i%s.o.channels, 0)
	return ws, err
}

// churn joins, talks and leaves or vanishes until ctx ends.
func churn(ctx context.Context, s *soak, i int) {
	for cycle := 0; ctx.Err() == nil; cycle++ {
		who := fmt.Sprintf("churner %d", i)
		ch := (i + cycle) % s.o.channels
		ws, joined, err := joinGuest(ctx, s, guestAddr(2500+i*8+cycle%8), ch, 2)
		if err != nil {
			if ctx.Err() == nil && joined.ErrorCode == "" {
				s.fail("%s could not join: %v", who, err)
			} else if joined.ErrorCode != "" {
				s.refused(who, joined.ErrorCode)
			}
			continue
		}
		if err := send(ctx, ws, fmt.Sprintf(`{"cmd":"CHAT","channel":%d,"to":-1,"text":"cycle %d"}`, joined.Channel, cycle)); err == nil {
			// Read until our own message comes back (a broadcast reaches
			// the sender too), or a moment passes.
			for deadline := time.Now().Add(200 * time.Millisecond); time.Now().Before(deadline); {
				f, err := readFrame(ctx, ws, time.Until(deadline))
				if err != nil {
					if isClosed(err) {
						s.closed(who, err)
					}
					break
				}
				if f.Success != nil && !*f.Success {
					s.refused(who, f.ErrorCode)
				}
				if f.Cmd == "CHAT" {
					break
				}
			}
		}
		if cycle%2 == 0 {
			_ = send(ctx, ws, fmt.Sprintf(`{"cmd":"LEAVE","channel":%d}`, joined.Channel))
			ws.Close(websocket.StatusNormalClosure, "")
		} else {
			ws.CloseNow() // vanish without a goodbye
		}
		s.churned.Add(1)
	}
}

// attacks are bad inputs, each sent as one message; the relay must answer
// with a documented error code or close the connection with a documented
// close code, and keep serving everyone else.
var attacks = []struct {
	name   string
	binary bool
	msg    func() string
}{
	{"not json", false, func() string { return "hello relay" }},
	{"array", false, func() string { return `[1,2,3]` }},
	{"number cmd", false, func() string { return `{"cmd":5}` }},
	{"forged token", false, func() string {
		return `{"cmd":"JOIN","channel":"soak-0","protocol":"soak","token":"AAAAAAAAAAAAAAAAAAAAAAAA","ipauth":false}`
	}},
	{"guest grant", false, func() string {
		return `{"cmd":"GRANT","channel":"soak-0","protocol":"soak","clientmode":2,"extra":{},"makeauth":true}`
	}},
	{"unknown channel", false, func() string { return `{"cmd":"HI","channel":987654,"to":-1}` }},
	{"set extra as guest", false, func() string { return `{"cmd":"SET_EXTRA","channel":1,"id":1,"extra":{}}` }},
	{"leave bad channel", false, func() string { return `{"cmd":"LEAVE","channel":"abc"}` }},
	{"long channel name", false, func() string {
		return `{"cmd":"JOIN","channel":"` + strings.Repeat("n", 300) + `","protocol":"soak","ipauth":false}`
	}},
	{"lone surrogate", false, func() string { return `{"cmd":"JOIN","channel":"\ud800","protocol":"soak","ipauth":false}` }},
	{"deep nesting", false, func() string {
		return `{"cmd":"X","channel":1,"to":-1,"a":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`
	}},
	{"many keys", false, func() string {
		var b strings.Builder
		b.WriteString(`{"cmd":"X"`)
		for k := range 2000 {
			fmt.Fprintf(&b, `,"k%d":1`, k)
		}
		b.WriteString(`}`)
		return b.String()
	}},
	{"binary garbage", true, func() string { return "\xff\xfe\x00\x01garbage" }},
	{"oversized", false, func() string { return `{"cmd":"X","pad":"` + strings.Repeat("x", 70<<10) + `"}` }},
}

// attack sends bad input over and over from one connection, dialling again
// when the relay closes it.
func attack(ctx context.Context, s *soak, i int) {
	who := fmt.Sprintf("attacker %d", i)
	var ws *websocket.Conn
	defer func() {
		if ws != nil {
			ws.CloseNow()
		}
	}()
	for n := i; ctx.Err() == nil; n++ {
		if ws == nil {
			var err error
			if ws, err = dial(ctx, s, guestAddr(3000+i)); err != nil {
				if ctx.Err() == nil {
					// A refused handshake (a connection cap) is an answer
					// too; anything else is a failure of the relay.
					if !strings.Contains(err.Error(), "429") && !strings.Contains(err.Error(), "503") {
						s.fail("%s could not connect: %v", who, err)
					}
					time.Sleep(50 * time.Millisecond)
				}
				continue
			}
		}
		if i%4 == 3 {
			// A flooder: a burst of requests without waiting for the
			// answers, past any per-connection rate a relay may have.
			if err := flood(ctx, s, ws, who); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.closed(who, err)
				ws.CloseNow()
				ws = nil
			}
			continue
		}
		a := attacks[n%len(attacks)]
		typ := websocket.MessageText
		if a.binary {
			typ = websocket.MessageBinary
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := ws.Write(wctx, typ, []byte(a.msg()))
		cancel()
		s.attacks.Add(1)
		if err == nil {
			var f frame
			f, err = readFrame(ctx, ws, 5*time.Second)
			if err == nil {
				if f.Success != nil && !*f.Success {
					s.refused(who, f.ErrorCode)
				}
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, context.DeadlineExceeded) {
			s.fail("%s: no answer to %q within 5 s", who, a.name)
		} else {
			s.closed(who, err)
		}
		ws.CloseNow()
		ws = nil
	}
}

// flood writes a burst of requests, then reads the answers; it returns the
// error that ended the connection, if one did.
func flood(ctx context.Context, s *soak, ws *websocket.Conn, who string) error {
	const burst = 400
	for range burst {
		if err := send(ctx, ws, `{"cmd":"HI","channel":987654,"to":-1}`); err != nil {
			return err
		}
		s.attacks.Add(1)
	}
	for range burst {
		f, err := readFrame(ctx, ws, 5*time.Second)
		if err != nil {
			return err
		}
		if f.Success != nil && !*f.Success {
			s.refused(who, f.ErrorCode)
		}
	}
	return nil
}
