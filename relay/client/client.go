package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// DialOptions configures Dial. A nil *DialOptions means all defaults.
type DialOptions struct {
	// Origin is sent as the Origin header of the handshake. Default: none
	// (the relay accepts requests without Origin from non-browser clients).
	Origin string
	// Header holds extra handshake headers (for example a proxy's
	// Authorization). Default: none.
	Header http.Header
	// HTTPClient performs the handshake. Default: http.DefaultClient.
	HTTPClient *http.Client
	// ReadLimit is the largest frame the client accepts, in bytes.
	// Default: 1 MiB.
	ReadLimit int64
	// WriteTimeout bounds each frame write. Default: 10 s.
	WriteTimeout time.Duration
	// MaxQueuedEvents bounds the events held for Events and the wait
	// helpers; past it the oldest queued event is dropped (see Dropped).
	// Default: 4096.
	MaxQueuedEvents int
}

func (o *DialOptions) withDefaults() DialOptions {
	var d DialOptions
	if o != nil {
		d = *o
	}
	if d.ReadLimit <= 0 {
		d.ReadLimit = 1 << 20
	}
	if d.WriteTimeout <= 0 {
		d.WriteTimeout = 10 * time.Second
	}
	if d.MaxQueuedEvents <= 0 {
		d.MaxQueuedEvents = 4096
	}
	return d
}

// Client is one WebSocket connection to a relay (or any DRC server). It is
// safe for concurrent use.
//
// # Requests and replies
//
// The DRC protocol has no request ids. CreateToken, Join, SetExtra and
// Leave wait for their reply, so the Client sends them one at a time; an
// error frame on channel 0 that arrives while one of them waits is its
// answer (the protocol numbers only the errors of application messages).
// Send and Broadcast are not acknowledged by the protocol: they return once
// the frame is written, and an error the relay reports for them later
// arrives as an *ErrorEvent.
//
// # Events
//
// Everything else the relay sends becomes an Event. The wait helpers
// (WaitFor, WaitMessage, Request) take matching events first, including
// ones already queued; Events returns the rest in order.
type Client struct {
	conn *websocket.Conn
	opts DialOptions

	ctx    context.Context // lives as long as the connection
	cancel context.CancelFunc

	reqSem chan struct{} // one request that waits for a reply at a time

	mu       sync.Mutex
	id       int64
	channels map[int64]*chanState
	pending  *pendingReq
	waiters  []*waiter
	queue    []Event
	dropped  int
	err      error // why the connection ended; nil while open
	pumping  bool
	queueSig chan struct{} // 1-buffered: queue grew

	events    chan Event
	done      chan struct{} // closed when the read loop ends
	closeOnce sync.Once
	closed    chan struct{} // closed by Close
}

type chanState struct {
	name, protocol string
	self           int64
	members        map[int64]Member
}

func (cs *chanState) snapshot(n int64) *Channel {
	ch := &Channel{Number: n, Name: cs.name, Protocol: cs.protocol, Self: cs.members[cs.self]}
	for _, m := range cs.members {
		ch.Members = append(ch.Members, m)
	}
	sortMembers(ch.Members)
	return ch
}

type result struct {
	f   *frame
	err error
}

type pendingReq struct {
	match func(*frame) bool
	ch    chan result // 1-buffered
}

type waiter struct {
	match func(Event) bool
	ch    chan Event // 1-buffered
}

// Dial connects to the relay at url (ws:// or wss://). ctx bounds the
// handshake only.
func Dial(ctx context.Context, url string, opts *DialOptions) (*Client, error) {
	o := opts.withDefaults()
	h := http.Header{}
	for k, v := range o.Header {
		h[k] = append([]string(nil), v...)
	}
	if o.Origin != "" {
		h.Set("Origin", o.Origin)
	}
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: o.HTTPClient, HTTPHeader: h})
	if err != nil {
		return nil, fmt.Errorf("dial relay: %w", err)
	}
	conn.SetReadLimit(o.ReadLimit)
	lctx, cancel := context.WithCancel(context.Background())
	c := &Client{
		conn:     conn,
		opts:     o,
		ctx:      lctx,
		cancel:   cancel,
		reqSem:   make(chan struct{}, 1),
		channels: map[int64]*chanState{},
		queueSig: make(chan struct{}, 1),
		events:   make(chan Event),
		done:     make(chan struct{}),
		closed:   make(chan struct{}),
	}
	go c.readLoop()
	return c, nil
}

// Close closes the connection and the Events channel. It is safe to call
// more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.conn.Close(websocket.StatusNormalClosure, "")
		c.cancel()
	})
	<-c.done
	return nil
}

// Done is closed when the connection has ended, by Close or otherwise.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns why the connection ended, or nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// ID returns this client's id, known after its first successful Join
// (0 before).
func (c *Client) ID() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.id
}

// Channels returns snapshots of the channels this client is a member of,
// sorted by number.
func (c *Client) Channels() []*Channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Channel, 0, len(c.channels))
	for n, cs := range c.channels {
		out = append(out, cs.snapshot(n))
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Number < out[j-1].Number; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// Channel returns a snapshot of channel n, or nil when this client is not
// a member of it.
func (c *Client) Channel(n int64) *Channel {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs, ok := c.channels[n]
	if !ok {
		return nil
	}
	return cs.snapshot(n)
}

// RandomAuthority returns the id of a randomly chosen authority of channel
// n (useful to spread load over several backends), or false when this
// client sees none.
func (c *Client) RandomAuthority(n int64) (int64, bool) {
	ch := c.Channel(n)
	if ch == nil {
		return 0, false
	}
	ids := ch.Authorities()
	if len(ids) == 0 {
		return 0, false
	}
	return ids[rand.IntN(len(ids))], true
}

// Dropped returns how many events were dropped because more than
// DialOptions.MaxQueuedEvents were waiting to be read.
func (c *Client) Dropped() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Events returns the stream of events no pending call claimed. It is
// closed after the connection ends and the queued events are read, or at
// Close. Events not read are queued up to DialOptions.MaxQueuedEvents.
func (c *Client) Events() <-chan Event {
	c.mu.Lock()
	if !c.pumping {
		c.pumping = true
		go c.pump()
	}
	c.mu.Unlock()
	return c.events
}

// pump moves queued events to the events channel.
func (c *Client) pump() {
	defer close(c.events)
	for {
		c.mu.Lock()
		var ev Event
		if len(c.queue) > 0 {
			ev = c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
		}
		ended := c.err != nil
		c.mu.Unlock()
		if ev == nil {
			if ended {
				return
			}
			select {
			case <-c.queueSig:
				continue
			case <-c.done:
				continue // drain what is left, then return
			case <-c.closed:
				return
			}
		}
		select {
		case c.events <- ev:
		case <-c.closed:
			return
		}
	}
}

// CreateToken asks the relay for a grant token for the channel (name,
// protocol): a GRANT request. The client must be a permanent authority (by
// address, or by opts.AuthToken). The token must be used within the
// relay's grant lifetime (30 s by default).
func (c *Client) CreateToken(ctx context.Context, name, protocol string, opts *TokenOptions) (*Grant, error) {
	var o TokenOptions
	if opts != nil {
		o = *opts
	}
	extra := o.Extra
	if extra == nil {
		extra = map[string]any{}
	}
	req := map[string]any{
		"cmd": "GRANT", "channel": name, "protocol": protocol,
		"clientmode": int(o.ClientMode), "extra": extra,
	}
	if o.AuthToken != "" {
		req["token"] = o.AuthToken
	}
	if o.MakeAuth {
		req["makeauth"] = true
	}
	f, err := c.roundTrip(ctx, req, func(f *frame) bool {
		return f.Cmd == "GRANTED" && f.ChannelName != nil && *f.ChannelName == name &&
			f.Protocol != nil && *f.Protocol == protocol
	})
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	return &Grant{Token: f.Token, Channel: name, Protocol: protocol}, nil
}

// TokenOptions are the optional parts of a grant. A nil *TokenOptions
// means a receive-only token with no extra data.
type TokenOptions struct {
	// AuthToken is a static authority token, for clients that are not
	// authorities by address.
	AuthToken string
	// ClientMode is the mode of the member that joins with the token.
	// Default: RecvOnly.
	ClientMode Mode
	// Extra is attached to the member that joins with the token.
	Extra map[string]any
	// MakeAuth makes the member that joins with the token an authority.
	MakeAuth bool
}

// Grant is a grant token the relay minted.
type Grant struct {
	Token    string
	Channel  string
	Protocol string
}

// JoinOptions are the optional parts of a JOIN. A nil *JoinOptions joins
// with no token, as an authority by address if the relay says so.
type JoinOptions struct {
	// Token is a static authority token or a grant token.
	Token string
	// NoIPAuth asks the relay not to make this client an authority because
	// of its address ("ipauth": false), to join as an ordinary member.
	NoIPAuth bool
}

// Join joins the channel (name, protocol) and returns it with the members
// this client may see.
func (c *Client) Join(ctx context.Context, name, protocol string, opts *JoinOptions) (*Channel, error) {
	var o JoinOptions
	if opts != nil {
		o = *opts
	}
	req := map[string]any{"cmd": "JOIN", "channel": name, "protocol": protocol}
	if o.Token != "" {
		req["token"] = o.Token
	}
	if o.NoIPAuth {
		req["ipauth"] = false
	}
	f, err := c.roundTrip(ctx, req, func(f *frame) bool {
		return f.isOwnJoined() && *f.ChannelName == name && *f.Protocol == protocol
	})
	if err != nil {
		return nil, fmt.Errorf("join %q/%q: %w", name, protocol, err)
	}
	ch := c.Channel(f.Channel)
	if ch == nil { // left again before we looked; answer from the frame
		ch, err = channelFromJoined(f)
		if err != nil {
			return nil, fmt.Errorf("join %q/%q: %w", name, protocol, err)
		}
	}
	return ch, nil
}

// SetExtra replaces the extra data of member id of channel n (authorities
// only) and waits until the relay confirms it.
func (c *Client) SetExtra(ctx context.Context, n, id int64, extra map[string]any) error {
	if extra == nil {
		extra = map[string]any{}
	}
	req := map[string]any{"cmd": "SET_EXTRA", "channel": n, "id": id, "extra": extra}
	_, err := c.roundTrip(ctx, req, func(f *frame) bool {
		return f.Cmd == "SET_EXTRA" && f.Channel == n && f.ID == id
	})
	if err != nil {
		return fmt.Errorf("set extra: %w", err)
	}
	return nil
}

// Leave leaves channel n and waits until the relay confirms it.
func (c *Client) Leave(ctx context.Context, n int64) error {
	req := map[string]any{"cmd": "LEAVE", "channel": n}
	_, err := c.roundTrip(ctx, req, func(f *frame) bool {
		return f.Cmd == "LEFT" && f.Channel == n && f.ID == c.id // c.mu is held by the caller
	})
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// Send sends an application message cmd to member to of channel n. fields
// (nil, a map or a struct encoding to a JSON object) become the message's
// other fields; fields named channel, success, from, cmd or to are
// overwritten. It returns once the frame is written: the protocol has no
// acknowledgement, so a refusal by the relay arrives later as an
// *ErrorEvent. Send checks locally that the client is a member of n that
// may send, and returns invalid_channel or access_denied otherwise.
func (c *Client) Send(ctx context.Context, n, to int64, cmd string, fields any) error {
	if err := c.send(ctx, n, to, cmd, fields); err != nil {
		return fmt.Errorf("send %q: %w", cmd, err)
	}
	return nil
}

// Broadcast sends an application message to every member of channel n that
// may receive it (only authorities when this client's mode is SendToAuths).
// See Send.
func (c *Client) Broadcast(ctx context.Context, n int64, cmd string, fields any) error {
	if err := c.send(ctx, n, -1, cmd, fields); err != nil {
		return fmt.Errorf("broadcast %q: %w", cmd, err)
	}
	return nil
}

// SendToAuthorities sends the message directly to each authority of
// channel n that this client sees.
func (c *Client) SendToAuthorities(ctx context.Context, n int64, cmd string, fields any) error {
	ch := c.Channel(n)
	if ch == nil {
		return fmt.Errorf("send %q to authorities: %w", cmd, &Error{Code: CodeInvalidChannel, Message: "not a member of the channel", Channel: 0})
	}
	for _, id := range ch.Authorities() {
		if err := c.send(ctx, n, id, cmd, fields); err != nil {
			return fmt.Errorf("send %q to authorities: %w", cmd, err)
		}
	}
	return nil
}

// Request sends cmd to member to of channel n (or broadcasts it when to is
// negative) and waits for a message replyCmd on that channel, from to when
// to is not negative.
func (c *Client) Request(ctx context.Context, n, to int64, cmd string, fields any, replyCmd string) (*MessageEvent, error) {
	w := c.addWaiter(matchMessage(n, replyCmd, to))
	if err := c.send(ctx, n, to, cmd, fields); err != nil {
		c.removeWaiter(w)
		return nil, fmt.Errorf("request %q: %w", cmd, err)
	}
	ev, err := c.wait(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("request %q: %w", cmd, err)
	}
	return ev.(*MessageEvent), nil
}

// WaitMessage waits for a message cmd on channel n (any cmd when cmd is
// empty), including one already received but not yet read from Events.
func (c *Client) WaitMessage(ctx context.Context, n int64, cmd string) (*MessageEvent, error) {
	ev, err := c.WaitFor(ctx, matchMessage(n, cmd, -1))
	if err != nil {
		return nil, err
	}
	return ev.(*MessageEvent), nil
}

func matchMessage(n int64, cmd string, from int64) func(Event) bool {
	return func(ev Event) bool {
		m, ok := ev.(*MessageEvent)
		return ok && m.Channel == n && (cmd == "" || m.Cmd == cmd) && (from < 0 || m.From == from)
	}
}

// WaitFor waits for the first event match accepts, looking first at events
// received but not yet read from Events. The event is taken: it will not
// appear on Events. match runs with the client's lock held and must not
// call the Client.
func (c *Client) WaitFor(ctx context.Context, match func(Event) bool) (Event, error) {
	// Looking at the queue and registering the waiter happen under one
	// lock, so an event arriving in between cannot slip past both.
	c.mu.Lock()
	for i, ev := range c.queue {
		if match(ev) {
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			c.mu.Unlock()
			return ev, nil
		}
	}
	w := &waiter{match: match, ch: make(chan Event, 1)}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	ev, err := c.wait(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("wait: %w", err)
	}
	return ev, nil
}

func (c *Client) addWaiter(match func(Event) bool) *waiter {
	w := &waiter{match: match, ch: make(chan Event, 1)}
	c.mu.Lock()
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	return w
}

func (c *Client) removeWaiter(w *waiter) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			return
		}
	}
}

func (c *Client) wait(ctx context.Context, w *waiter) (Event, error) {
	select {
	case ev := <-w.ch:
		return ev, nil
	case <-ctx.Done():
		c.removeWaiter(w)
		select { // it may have been matched meanwhile
		case ev := <-w.ch:
			return ev, nil
		default:
		}
		return nil, ctx.Err()
	case <-c.done:
		c.removeWaiter(w)
		return nil, c.closedErr()
	}
}

func (c *Client) closedErr() error {
	if err := c.Err(); err != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

func (c *Client) send(ctx context.Context, n, to int64, cmd string, fields any) error {
	c.mu.Lock()
	cs, ok := c.channels[n]
	var mode Mode
	if ok {
		mode = cs.members[cs.self].Mode
	}
	c.mu.Unlock()
	if !ok {
		return &Error{Code: CodeInvalidChannel, Message: "not a member of the channel"}
	}
	if mode == RecvOnly {
		return &Error{Code: CodeAccessDenied, Message: "receive-only members may not send", Channel: n}
	}
	if cmd == "" {
		return &Error{Code: CodeMissingInvalidCmd, Message: "empty cmd"}
	}
	msg, err := encodeMessage(n, to, cmd, fields)
	if err != nil {
		return err
	}
	return c.write(ctx, msg)
}

// encodeMessage builds {"channel":n,"cmd":cmd,"to":to, fields...}, keeping
// the order of the fields when they encode to an object.
func encodeMessage(n, to int64, cmd string, fields any) ([]byte, error) {
	head, err := json.Marshal(map[string]any{"channel": n, "cmd": cmd, "to": to})
	if err != nil {
		return nil, err
	}
	if fields == nil {
		return head, nil
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encode fields: %w", err)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		return nil, fmt.Errorf("fields must encode to a JSON object: %w", err)
	}
	if len(probe) == 0 {
		return head, nil
	}
	// The relay lets the last duplicate key win, and its own fields win
	// anyway; put ours last so channel, cmd and to cannot be overridden.
	out := make([]byte, 0, len(head)+len(body))
	out = append(out, body[:len(body)-1]...)
	out = append(out, ',')
	out = append(out, head[1:]...)
	return out, nil
}

func (c *Client) write(ctx context.Context, v any) error {
	data, ok := v.([]byte)
	if !ok {
		var err error
		data, err = json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.done:
		return c.closedErr()
	default:
	}
	// The caller's ctx is not passed down: coder/websocket closes the
	// connection when a write's context ends, and one caller's deadline
	// must not cost every other caller the connection.
	wctx, cancel := context.WithTimeout(c.ctx, c.opts.WriteTimeout)
	defer cancel()
	if err := c.conn.Write(wctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// roundTrip sends req and waits for the frame match accepts or an error
// frame for channel 0.
func (c *Client) roundTrip(ctx context.Context, req any, match func(*frame) bool) (*frame, error) {
	select {
	case c.reqSem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.closedErr()
	}
	defer func() { <-c.reqSem }()

	p := &pendingReq{match: match, ch: make(chan result, 1)}
	c.mu.Lock()
	c.pending = p
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.pending == p {
			c.pending = nil
		}
		c.mu.Unlock()
	}()
	if err := c.write(ctx, req); err != nil {
		return nil, err
	}
	select {
	case r := <-p.ch:
		return r.f, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, c.closedErr()
	}
}

func (c *Client) readLoop() {
	defer close(c.done)
	for {
		_, data, err := c.conn.Read(c.ctx)
		if err != nil {
			c.mu.Lock()
			select {
			case <-c.closed:
				c.err = ErrClosed
			default:
				c.err = fmt.Errorf("read: %w", err)
			}
			c.mu.Unlock()
			c.cancel()
			return
		}
		f, err := parseFrame(data)
		if err != nil {
			c.mu.Lock()
			c.emitLocked(&ErrorEvent{Err: &Error{Code: "invalid_packet", Message: err.Error()}})
			c.mu.Unlock()
			continue
		}
		c.mu.Lock()
		c.handleLocked(f)
		c.mu.Unlock()
	}
}

// handleLocked updates the client's view of its channels and routes the
// frame to the pending request, a waiter or the queue. c.mu must be held.
func (c *Client) handleLocked(f *frame) {
	if !f.Success {
		e := f.asError()
		// Only application messages get errors with a channel number
		// (access_denied, missing_to, invalid_to): an error on channel 0 is
		// the waiting request's, one on channel N a refused send's.
		if p := c.pending; p != nil && e.Channel == 0 {
			c.pending = nil
			p.ch <- result{err: e}
			return
		}
		c.emitLocked(&ErrorEvent{Err: e})
		return
	}
	ev, err := c.applyLocked(f)
	if err != nil {
		c.emitLocked(&ErrorEvent{Err: &Error{Code: "invalid_packet", Message: err.Error(), Channel: f.Channel}})
		return
	}
	if p := c.pending; p != nil && p.match(f) {
		c.pending = nil
		p.ch <- result{f: f}
		return
	}
	if ev != nil {
		c.emitLocked(ev)
	}
}

// applyLocked applies f to the channel state and returns its event.
func (c *Client) applyLocked(f *frame) (Event, error) {
	switch f.Cmd {
	case "JOINED":
		if f.isOwnJoined() {
			ch, err := channelFromJoined(f)
			if err != nil {
				return nil, err
			}
			cs := &chanState{name: ch.Name, protocol: ch.Protocol, self: f.ID, members: map[int64]Member{}}
			for _, m := range ch.Members {
				cs.members[m.ID] = m
			}
			c.channels[f.Channel] = cs
			c.id = f.ID
			return &JoinedEvent{Channel: f.Channel, Member: ch.Self, Self: true}, nil
		}
		var m Member
		if f.Info != nil {
			var err error
			if m, err = f.Info.member(f.ID); err != nil {
				return nil, err
			}
		}
		m.ID = f.ID
		if cs, ok := c.channels[f.Channel]; ok {
			cs.members[f.ID] = m
		}
		return &JoinedEvent{Channel: f.Channel, Member: m}, nil
	case "LEFT":
		self := c.id != 0 && f.ID == c.id
		if cs, ok := c.channels[f.Channel]; ok {
			if self {
				delete(c.channels, f.Channel)
			} else {
				delete(cs.members, f.ID)
			}
		}
		return &LeftEvent{Channel: f.Channel, ID: f.ID, Self: self}, nil
	case "SET_EXTRA":
		extra, err := decodeExtra(f.Extra)
		if err != nil {
			return nil, err
		}
		if cs, ok := c.channels[f.Channel]; ok {
			if m, ok := cs.members[f.ID]; ok {
				m.Extra = extra
				cs.members[f.ID] = m
			}
		}
		return &ExtraEvent{Channel: f.Channel, ID: f.ID, Extra: extra}, nil
	}
	return &MessageEvent{
		Channel: f.Channel, From: f.From, Cmd: f.Cmd,
		Replayed: f.Replayed && f.From == 0,
		Fields:   f.messageFields(), Raw: f.raw,
	}, nil
}

// emitLocked gives ev to the first waiter that wants it, or queues it.
func (c *Client) emitLocked(ev Event) {
	for i, w := range c.waiters {
		if w.match(ev) {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			w.ch <- ev
			return
		}
	}
	if len(c.queue) >= c.opts.MaxQueuedEvents {
		c.queue[0] = nil
		c.queue = c.queue[1:]
		c.dropped++
	}
	c.queue = append(c.queue, ev)
	select {
	case c.queueSig <- struct{}{}:
	default:
	}
}
