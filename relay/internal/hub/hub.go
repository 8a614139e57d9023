package hub

import (
	"context"

	"github.com/relay-project/relay/relay/protocol"
)

// Frame is one encoded server message. Its Data is shared read-only by every
// recipient it is queued for.
type Frame struct {
	Data   []byte
	Binary bool // send as a binary WebSocket message
}

// Message is an application message for delivery: its frame as this
// instance's members get it, who sent it, and where in the frame the part
// that does not depend on the channel's number starts, so that another
// instance can put its own number in front of the same tail.
type Message struct {
	Frame
	From int64
	// Tail is the offset in Data of `"cmd":…}`, the frame after
	// `{"channel":N,"success":true,"from":F,`.
	Tail int
}

// Replay returns the frames a joiner gets right after its own JOINED and
// before any other frame of ch: the channel's retained messages. Join calls
// it under the channel's lock, so it must not block (no network I/O).
type Replay func(ch *Channel) []Frame

// Recipient is a member's connection.
type Recipient interface {
	// ClientID returns the client's id, unique across instances.
	ClientID() int64
	// Send queues f for delivery and returns at once. It returns false
	// when the recipient is closing or its queue overflowed; the recipient
	// then disconnects itself and leaves its channels like any disconnect.
	Send(f Frame) bool
}

// Hub is channel membership and delivery, as the protocol code sees it.
// Memory is its only implementation, in one process or in a cluster: the
// interface trades in *Channel, whose state is Memory's, so a second
// implementation could not sit beside it. The operations that may wait on
// shared state (Join, SetExtra) take a context and return an error.
type Hub interface {
	// Join makes r a member of (name, protocol) with info, creating the
	// channel if needed, and sends JOINED: the full copy to r, then
	// replay's frames to r, then the notification to the members allowed
	// to see r, with no other frame of the channel in between. Joining a
	// channel r is already in replaces its info and sends JOINED again.
	// token is the grant token r joined with ("" for none); the token it
	// replaces, if any and different, is returned so the caller can
	// release it. An error means nothing changed and nobody was told.
	Join(ctx context.Context, r Recipient, name, protocol string, info protocol.MemberInfo, token string, binary bool, replay Replay) (ch *Channel, replaced string, err error)
	// Leave removes r from ch, sends LEFT to r (in its frame type) and to
	// the members allowed to see r (as text), and returns the grant token
	// r had joined with. ok is false if r was not a member.
	Leave(r Recipient, ch *Channel, binary bool) (token string, ok bool)
	// SetExtra replaces member id's extra and tells every member allowed to
	// see it. It returns false if id is not a member.
	SetExtra(ctx context.Context, ch *Channel, id int64, extra []byte, binary bool) (bool, error)
	// Held returns the grant token local member id holds ("" for none)
	// and its info.
	Held(ch *Channel, id int64) (token string, info protocol.MemberInfo, ok bool)
	// Member returns member id's info.
	Member(ch *Channel, id int64) (protocol.MemberInfo, bool)
	// Members returns every member, in join order.
	Members(ch *Channel) []protocol.Member
	// Broadcast queues m for every member, or only for authorities when
	// authOnly, and returns how many it was queued for.
	Broadcast(ch *Channel, authOnly bool, m Message) int
	// SendTo queues m for member id; false if id is not a member.
	SendTo(ch *Channel, id int64, m Message) bool
	// Lookup returns the channel (name, protocol), or nil if it has no
	// members.
	Lookup(name, protocol string) *Channel
	// Channels returns how many channels have members.
	Channels() int
}
