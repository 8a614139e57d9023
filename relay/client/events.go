package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// Mode is a member's client mode: what it may send.
type Mode int

// Client modes, as in the DRC protocol.
const (
	// RecvOnly members may not send.
	RecvOnly Mode = 0
	// SendToAuths members may send only to authorities.
	SendToAuths Mode = 1
	// SendToAny members may send to anyone. Authorities always have it.
	SendToAny Mode = 2
)

// String returns the protocol's name for the mode.
func (m Mode) String() string {
	switch m {
	case RecvOnly:
		return "recv_only"
	case SendToAuths:
		return "send_to_auths"
	case SendToAny:
		return "send_to_any"
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Member is what the relay tells about one member of a channel.
type Member struct {
	// ID is the member's client id.
	ID int64 `json:"id"`
	// Auth reports whether the member is an authority of the channel.
	Auth bool `json:"auth"`
	// Mode is the member's client mode.
	Mode Mode `json:"mode"`
	// Extra is the data an authority attached to the member; nil when the
	// relay sent false (an authority that joined without a grant token).
	Extra map[string]any `json:"extra"`
}

// memberInfo is the wire form of a member info object.
type memberInfo struct {
	Auth  bool            `json:"auth"`
	Mode  Mode            `json:"mode"`
	Extra json.RawMessage `json:"extra"`
}

func (mi memberInfo) member(id int64) (Member, error) {
	extra, err := decodeExtra(mi.Extra)
	if err != nil {
		return Member{}, err
	}
	return Member{ID: id, Auth: mi.Auth, Mode: mi.Mode, Extra: extra}, nil
}

// decodeExtra accepts an object, false/null (no extra) and [] (how PHP
// writes an empty object).
func decodeExtra(raw json.RawMessage) (map[string]any, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0, bytes.Equal(raw, []byte("false")), bytes.Equal(raw, []byte("null")):
		return nil, nil
	case raw[0] == '[':
		var a []any
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
		m := make(map[string]any, len(a))
		for i, v := range a {
			m[strconv.Itoa(i)] = v
		}
		return m, nil
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("extra: %w", err)
	}
	return m, nil
}

// Channel is a snapshot of a channel this client is a member of.
type Channel struct {
	// Number is the relay's number for the channel; requests use it.
	Number int64
	// Name and Protocol identify the channel.
	Name     string
	Protocol string
	// Self is this client's own membership.
	Self Member
	// Members holds the members this client may see, itself included,
	// sorted by id.
	Members []Member
}

// Authorities returns the ids of the channel's authorities this client sees.
func (ch *Channel) Authorities() []int64 {
	var ids []int64
	for _, m := range ch.Members {
		if m.Auth {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// Event is something the relay told this client: one of *JoinedEvent,
// *LeftEvent, *ExtraEvent, *MessageEvent or *ErrorEvent.
type Event interface {
	// ChannelNumber returns the channel the event is about (0 for an error
	// not tied to a channel).
	ChannelNumber() int64
	isEvent()
}

// JoinedEvent says a member joined a channel. Self is true for this
// client's own JOINED (the answer to Join), which Join consumes; events on
// the stream are about other members.
type JoinedEvent struct {
	Channel int64
	Member  Member
	Self    bool
}

// LeftEvent says a member left a channel (Self: this client left, the
// answer to Leave).
type LeftEvent struct {
	Channel int64
	ID      int64
	Self    bool
}

// ExtraEvent says an authority changed a member's extra data.
type ExtraEvent struct {
	Channel int64
	ID      int64
	Extra   map[string]any
}

// MessageEvent is an application message.
type MessageEvent struct {
	// Channel is the channel number the message was sent on.
	Channel int64
	// From is the sender's client id; 0 means the relay itself (a message
	// published through the HTTP API).
	From int64
	// Cmd is the application command.
	Cmd string
	// Replayed is true for a retained message the relay replayed right
	// after this client joined (the wire field "replayed": true on a
	// message from 0; other senders cannot set it).
	Replayed bool
	// Fields holds every field of the message except channel, success,
	// from and cmd.
	Fields map[string]json.RawMessage
	// Raw is the whole frame as received.
	Raw []byte
}

// Decode unmarshals the whole message frame into v (a struct with json
// tags, or a map).
func (m *MessageEvent) Decode(v any) error {
	return json.Unmarshal(m.Raw, v)
}

// Field unmarshals one field of the message into v; it reports false when
// the message has no such field.
func (m *MessageEvent) Field(name string, v any) (bool, error) {
	raw, ok := m.Fields[name]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(raw, v)
}

// ErrorEvent is an error frame that no pending call claimed, typically the
// relay refusing a Send (sends have no acknowledgement in the protocol).
type ErrorEvent struct {
	Err *Error
}

// ChannelNumber implements Event.
func (e *JoinedEvent) ChannelNumber() int64 { return e.Channel }

// ChannelNumber implements Event.
func (e *LeftEvent) ChannelNumber() int64 { return e.Channel }

// ChannelNumber implements Event.
func (e *ExtraEvent) ChannelNumber() int64 { return e.Channel }

// ChannelNumber implements Event.
func (e *MessageEvent) ChannelNumber() int64 { return e.Channel }

// ChannelNumber implements Event.
func (e *ErrorEvent) ChannelNumber() int64 { return e.Err.Channel }

func (*JoinedEvent) isEvent()  {}
func (*LeftEvent) isEvent()    {}
func (*ExtraEvent) isEvent()   {}
func (*MessageEvent) isEvent() {}
func (*ErrorEvent) isEvent()   {}

// frame is a decoded server frame; fields absent from the frame stay zero.
type frame struct {
	Channel     int64                 `json:"channel"`
	Success     bool                  `json:"success"`
	Cmd         string                `json:"cmd"`
	From        int64                 `json:"from"`
	ID          int64                 `json:"id"`
	Info        *memberInfo           `json:"info"`
	ChannelName *string               `json:"channelname"`
	Protocol    *string               `json:"protocol"`
	Clients     map[string]memberInfo `json:"clients"`
	Token       string                `json:"token"`
	Extra       json.RawMessage       `json:"extra"`
	Error       string                `json:"error"`
	ErrorCode   string                `json:"errorcode"`
	Replayed    bool                  `json:"-"`

	raw    []byte
	fields map[string]json.RawMessage
}

// isOwnJoined reports whether f is the joiner's own JOINED copy.
func (f *frame) isOwnJoined() bool {
	return f.Cmd == "JOINED" && f.ChannelName != nil && f.Protocol != nil && f.Clients != nil
}

// parseFrame decodes a server frame. Application messages may carry any
// fields (a peer's "id" could be a string), so only the four fields the
// relay sets are decoded from them; the relay's own frames are decoded
// strictly.
func parseFrame(data []byte) (*frame, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return nil, fmt.Errorf("decode frame: %w", err)
	}
	f := &frame{raw: data, fields: all}
	for name, dst := range map[string]any{"channel": &f.Channel, "success": &f.Success, "cmd": &f.Cmd, "from": &f.From} {
		if raw, ok := all[name]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return nil, fmt.Errorf("decode frame field %q: %w", name, err)
			}
		}
	}
	switch {
	case !f.Success, f.Cmd == "JOINED", f.Cmd == "LEFT", f.Cmd == "SET_EXTRA", f.Cmd == "GRANTED":
		if err := json.Unmarshal(data, f); err != nil {
			return nil, fmt.Errorf("decode %s frame: %w", f.Cmd, err)
		}
	default:
		f.Replayed = bytes.Equal(bytes.TrimSpace(all["replayed"]), []byte("true"))
	}
	return f, nil
}

func (f *frame) asError() *Error {
	return &Error{Code: Code(f.ErrorCode), Message: f.Error, Channel: f.Channel}
}

// channelFromJoined builds a Channel from the joiner's own JOINED copy.
func channelFromJoined(f *frame) (*Channel, error) {
	ch := &Channel{Number: f.Channel, Name: *f.ChannelName, Protocol: *f.Protocol}
	for k, mi := range f.Clients {
		id, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("clients key %q: %w", k, err)
		}
		m, err := mi.member(id)
		if err != nil {
			return nil, err
		}
		ch.Members = append(ch.Members, m)
	}
	if f.Info != nil {
		self, err := f.Info.member(f.ID)
		if err != nil {
			return nil, err
		}
		ch.Self = self
		found := false
		for i := range ch.Members {
			if ch.Members[i].ID == f.ID {
				ch.Members[i] = self
				found = true
			}
		}
		if !found {
			ch.Members = append(ch.Members, self)
		}
	}
	sortMembers(ch.Members)
	return ch, nil
}

func sortMembers(ms []Member) {
	sort.Slice(ms, func(i, j int) bool { return ms[i].ID < ms[j].ID })
}

// messageFields returns the fields of a message frame other than the four
// the relay sets.
func (f *frame) messageFields() map[string]json.RawMessage {
	out := make(map[string]json.RawMessage, len(f.fields))
	for k, v := range f.fields {
		switch k {
		case "channel", "success", "from", "cmd":
		default:
			out[k] = v
		}
	}
	return out
}

// UnmarshalJSON decodes a member object whose extra may be an object,
// false (no extra) or [] (PHP's empty object).
func (m *Member) UnmarshalJSON(data []byte) error {
	var w struct {
		ID int64 `json:"id"`
		memberInfo
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	mm, err := w.member(w.ID)
	if err != nil {
		return err
	}
	*m = mm
	return nil
}
