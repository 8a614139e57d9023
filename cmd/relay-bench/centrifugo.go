package main

// The idle scenario against Centrifugo (-peer centrifugo), so that the
// relay's memory per idle connection can be compared with a known Go server
// by the same generator and the same method. Centrifugo speaks its own JSON
// protocol (one command or reply per line, several lines per frame): a
// member sends connect (anonymous, no token), then subscribe, and answers the
// server's application-level ping (an empty object) with an empty object.
// The end-of-run message is published through Centrifugo's HTTP API.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// centrifugoNamespace is the namespace of every bench channel: the server's
// configuration lets anonymous connections subscribe to it.
const centrifugoNamespace = "bench"

// Command ids of the two commands a member sends.
const (
	centrifugoConnectID   = 1
	centrifugoSubscribeID = 2
)

// centrifugoCommand is the subset of a client command the generator sends.
type centrifugoCommand struct {
	ID        uint32                 `json:"id"`
	Connect   *struct{}              `json:"connect,omitempty"`
	Subscribe *centrifugoSubscribeTo `json:"subscribe,omitempty"`
}

type centrifugoSubscribeTo struct {
	Channel string `json:"channel"`
}

// centrifugoConnectCmd is an anonymous connect: no token, no name.
func centrifugoConnectCmd() []byte {
	b, _ := json.Marshal(centrifugoCommand{ID: centrifugoConnectID, Connect: &struct{}{}})
	return b
}

// centrifugoSubscribeCmd subscribes to channel.
func centrifugoSubscribeCmd(channel string) []byte {
	b, _ := json.Marshal(centrifugoCommand{ID: centrifugoSubscribeID, Subscribe: &centrifugoSubscribeTo{Channel: channel}})
	return b
}

// centrifugoReply is the subset of a server reply the generator reads.
type centrifugoReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// centrifugoPing is the server's application-level ping, and the client's pong.
var centrifugoPing = []byte("{}")

// centrifugoLines calls fn for every non-empty line of a frame.
func centrifugoLines(p []byte, fn func(line []byte) error) error {
	for len(p) > 0 {
		line, rest, _ := bytes.Cut(p, []byte("\n"))
		p = rest
		if line = bytes.TrimSpace(line); len(line) > 0 {
			if err := fn(line); err != nil {
				return err
			}
		}
	}
	return nil
}

// errCentrifugoDone stops centrifugoLines once the awaited reply is found.
var errCentrifugoDone = errors.New("reply found")

// awaitCentrifugoReply reads until the reply to command id, answering pings
// on the way; an error reply becomes a protoError.
func awaitCentrifugoReply(ctx context.Context, ws *wsConn, id uint32) error {
	if dl, ok := ctx.Deadline(); ok {
		_ = ws.c.SetReadDeadline(dl)
		defer ws.c.SetReadDeadline(time.Time{})
	}
	var scratch []byte
	for {
		_, p, err := ws.readMessage()
		if err != nil {
			return err
		}
		err = centrifugoLines(p, func(line []byte) error {
			if bytes.Equal(line, centrifugoPing) {
				return ws.writeText(&scratch, centrifugoPing)
			}
			var r centrifugoReply
			if err := json.Unmarshal(line, &r); err != nil {
				return fmt.Errorf("bad reply %q: %w", line, err)
			}
			if r.ID != id {
				return nil // a push or another reply
			}
			if r.Error != nil {
				return &protoError{code: fmt.Sprint(r.Error.Code), text: r.Error.Message}
			}
			return errCentrifugoDone
		})
		if err == errCentrifugoDone {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// joinCentrifugo connects anonymously and subscribes to channel, returning
// the connection once the subscription is confirmed.
func joinCentrifugo(ctx context.Context, d *net.Dialer, tgt target, channel string, rbuf int) (*wsConn, error) {
	ctx, cancel := context.WithTimeout(ctx, joinTimeout)
	defer cancel()
	ws, err := dialWS(ctx, d, tgt.addr, tgt.path, tgt.origin, rbuf)
	if err != nil {
		return nil, err
	}
	var scratch []byte
	for _, step := range []struct {
		name string
		id   uint32
		cmd  []byte
	}{
		{"connect", centrifugoConnectID, centrifugoConnectCmd()},
		{"subscribe", centrifugoSubscribeID, centrifugoSubscribeCmd(channel)},
	} {
		if err := ws.writeText(&scratch, step.cmd); err != nil {
			ws.close()
			return nil, fmt.Errorf("%s: %w", step.name, err)
		}
		if err := awaitCentrifugoReply(ctx, ws, step.id); err != nil {
			ws.close()
			return nil, fmt.Errorf("%s: %w", step.name, err)
		}
	}
	return ws, nil
}

// centrifugoReadLoop is member.readLoop for Centrifugo: it also answers the
// server's pings, which Centrifugo disconnects a client for missing.
func (m *member) centrifugoReadLoop() {
	defer close(m.done)
	defer m.alive.Store(false)
	var scratch []byte
	for {
		_, p, err := m.ws.readMessage()
		if err != nil {
			return
		}
		_ = centrifugoLines(p, func(line []byte) error {
			if bytes.Equal(line, centrifugoPing) {
				return m.ws.writeText(&scratch, centrifugoPing)
			}
			if _, _, ok := scanSeqTime(line); ok {
				m.final.Store(true)
			}
			return nil
		})
	}
}

// centrifugoIdle joins the idle members to one channel of the bench
// namespace and checks them with a publication through the HTTP API.
func centrifugoIdle(tgt target, o connOptions) idleJoin {
	channel := fmt.Sprintf("%s:idle-%d", centrifugoNamespace, time.Now().UnixNano())
	return idleJoin{
		connect: func(ctx context.Context) ([]*member, error) {
			ds := dialers(sourcesFor(o.K, o.Sources))
			ms := make([]*member, o.K)
			err := parallel(ctx, o.K, max(o.Conc, 1), func(ctx context.Context, i int) error {
				ws, err := joinCentrifugo(ctx, ds[i%len(ds)], tgt, channel, 2048)
				if err != nil {
					return fmt.Errorf("member %d: %w", i, err)
				}
				m := &member{ws: ws, done: make(chan struct{})}
				m.alive.Store(true)
				ms[i] = m
				go m.centrifugoReadLoop()
				return nil
			})
			return ms, err
		},
		final: func(ms []*member) (int, int, error) {
			if err := centrifugoPublish(tgt, channel); err != nil {
				alive, got := awaitFinal(ms, 0)
				return alive, got, err
			}
			alive, got := awaitFinal(ms, 10*time.Second)
			return alive, got, nil
		},
	}
}

// centrifugoPublish publishes one bench message ({"seq":1,"t":0}) to
// channel through the server API on the WebSocket's host and port.
func centrifugoPublish(tgt target, channel string) error {
	body, _ := json.Marshal(map[string]any{"channel": channel, "data": map[string]int{"seq": 1, "t": 0}})
	req, err := http.NewRequest(http.MethodPost, "http://"+tgt.addr+"/api/publish", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if tgt.apiKey != "" {
		req.Header.Set("X-API-Key", tgt.apiKey)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK || strings.Contains(string(b), `"error"`) {
		return fmt.Errorf("publish: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	return nil
}
