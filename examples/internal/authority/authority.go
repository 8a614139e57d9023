// Package authority is the examples' backend side of the relay: one
// WebSocket connection that is an authority (by loopback address, or by a
// static authority token) and mints grant tokens, joins channels and
// publishes to them with the plain DRC protocol.
package authority

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/coder/websocket"
)

// Conn is an authority connection to a relay. Its methods are safe for
// concurrent use; requests that expect an answer run one at a time.
//
// DRC errors carry no request id: an error caused by a Broadcast (which the
// relay otherwise never answers) reaches the request in flight, if any. The
// examples only broadcast to channels they are in, which the relay accepts.
type Conn struct {
	ws    *websocket.Conn
	token string

	req     sync.Mutex    // one request awaiting an answer at a time
	mu      sync.Mutex    // guards waiter
	waiter  chan frame    // the current request's answer, or nil
	readErr chan struct{} // closed when the read loop ends
	err     error         // why the read loop ended; read after readErr
}

type frame struct {
	Channel     int    `json:"channel"`
	Success     bool   `json:"success"`
	Cmd         string `json:"cmd"`
	Token       string `json:"token"`
	Channelname string `json:"channelname"`
	Error       string `json:"error"`
	Errorcode   string `json:"errorcode"`
}

// Error is a refusal from the relay.
type Error struct {
	// Code is the DRC errorcode, such as "access_denied".
	Code string
	// Text is the relay's human-readable message.
	Text string
}

// Error implements error.
func (e *Error) Error() string { return "relay: " + e.Code + ": " + e.Text }

// Dial connects to the relay at url (ws:// or wss://). token is a static
// authority token sent with every request; "" relies on the relay treating
// this machine's address as an authority (the default for loopback).
func Dial(ctx context.Context, url, token string) (*Conn, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("authority: dial %s: %w", url, err)
	}
	c := &Conn{ws: ws, token: token, readErr: make(chan struct{})}
	go c.readLoop()
	return c, nil
}

func (c *Conn) readLoop() {
	defer close(c.readErr)
	for {
		_, data, err := c.ws.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		var f frame
		if json.Unmarshal(data, &f) != nil {
			continue
		}
		// Answers: GRANTED, the own copy of JOINED (it names the channel),
		// LEFT for a LEAVE, and errors. Everything else is traffic this
		// backend does not need (its own broadcasts echoed back, members
		// joining and leaving).
		answer := !f.Success || f.Cmd == "GRANTED" || f.Cmd == "JOINED" && f.Channelname != ""
		if !answer {
			continue
		}
		c.mu.Lock()
		w := c.waiter
		c.waiter = nil
		c.mu.Unlock()
		if w != nil {
			w <- f
		}
	}
}

// request sends msg and waits for its answer.
func (c *Conn) request(ctx context.Context, msg map[string]any) (frame, error) {
	c.req.Lock()
	defer c.req.Unlock()
	if c.token != "" {
		// Only GRANT and JOIN carry the authority token: any other field
		// of a message is delivered to its recipients.
		msg["token"] = c.token
	}
	w := make(chan frame, 1)
	c.mu.Lock()
	c.waiter = w
	c.mu.Unlock()
	if err := c.send(ctx, msg); err != nil {
		return frame{}, err
	}
	select {
	case f := <-w:
		if !f.Success {
			return f, &Error{Code: f.Errorcode, Text: f.Error}
		}
		return f, nil
	case <-c.readErr:
		return frame{}, fmt.Errorf("authority: connection closed: %w", c.err)
	case <-ctx.Done():
		c.mu.Lock()
		c.waiter = nil
		c.mu.Unlock()
		return frame{}, fmt.Errorf("authority: %v: %w", msg["cmd"], ctx.Err())
	}
}

func (c *Conn) send(ctx context.Context, msg map[string]any) error {
	data, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("authority: %w", err)
	}
	if err := c.ws.Write(ctx, websocket.MessageText, data); err != nil {
		return fmt.Errorf("authority: write: %w", err)
	}
	return nil
}

// Grant mints a grant token for (channel, protocol) with the client mode
// (0 receive only, 1 send to authorities, 2 send to anyone) and extra data.
func (c *Conn) Grant(ctx context.Context, channel, protocol string, mode int, extra map[string]any) (string, error) {
	if extra == nil {
		extra = map[string]any{}
	}
	f, err := c.request(ctx, map[string]any{"cmd": "GRANT", "channel": channel, "protocol": protocol, "clientmode": mode, "extra": extra})
	if err != nil {
		return "", err
	}
	return f.Token, nil
}

// Join enters (channel, protocol) as an authority and returns the channel
// number.
func (c *Conn) Join(ctx context.Context, channel, protocol string) (int, error) {
	f, err := c.request(ctx, map[string]any{"cmd": "JOIN", "channel": channel, "protocol": protocol})
	if err != nil {
		return 0, err
	}
	return f.Channel, nil
}

// Broadcast sends {cmd, ...fields} to every member of channel number ch.
// The relay acknowledges nothing on success.
func (c *Conn) Broadcast(ctx context.Context, ch int, cmd string, fields map[string]any) error {
	msg := map[string]any{}
	for k, v := range fields {
		msg[k] = v
	}
	msg["channel"], msg["cmd"], msg["to"] = ch, cmd, -1
	return c.send(ctx, msg)
}

// Leave exits channel number ch without waiting for the relay.
func (c *Conn) Leave(ctx context.Context, ch int) error {
	return c.send(ctx, map[string]any{"cmd": "LEAVE", "channel": ch})
}

// Close closes the connection.
func (c *Conn) Close() error {
	return c.ws.Close(websocket.StatusNormalClosure, "")
}
