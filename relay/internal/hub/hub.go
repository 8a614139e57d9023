// Package hub keeps channel membership and delivers frames to members.
//
// A channel is identified by (name, protocol), exists while it has members,
// and is numbered from 1 upward without reuse. The hub applies the protocol's
// visibility rules when it tells members about joins, leaves and extra
// changes, so every path that changes membership (WebSocket, HTTP API, a
// future cluster broker) tells the same members the same things.
//
// # Locking
//
// Memory.mu guards the channel index; each Channel.mu guards that channel's
// members. The two are never held together: Join finds or creates the channel
// under Memory.mu, releases it, then locks the channel; a channel emptied by
// Leave is marked dead under its own lock and then removed from the index, and
// a Join that finds a dead channel retries. Delivery (Recipient.Send) happens
// under Channel.mu and must never block.
package hub

import (
	"github.com/relay-project/relay/relay/protocol"
)

// Frame is one encoded server message. Its Data is shared read-only by every
// recipient it is queued for.
type Frame struct {
	Data   []byte
	Binary bool // send as a binary WebSocket message
}

// Recipient is a member's connection.
type Recipient interface {
	// ClientID returns the client's id, unique across instances.
	ClientID() int64
	// Send queues f for delivery and returns at once. It returns false
	// when the recipient is closing or its queue overflowed; the recipient
	// then disconnects itself and leaves its channels like any disconnect.
	Send(f Frame) bool
}

// Released is a grant token a member stopped holding and the member's info
// at that moment. Token is "" when the member held none.
type Released struct {
	Token string
	Info  protocol.MemberInfo
}

// Hub is channel membership and delivery. Memory serves one process; a
// clustered hub (several instances sharing channels through NATS) implements
// the same interface, so the protocol code above it does not change.
type Hub interface {
	// Join makes r a member of (name, protocol) with info, creating the
	// channel if needed, and sends JOINED: the full copy to r, and the
	// notification to the members allowed to see r. Joining a channel r
	// is already in replaces its info and sends JOINED again. token is the
	// grant token r joined with ("" for none); the token it replaces, if
	// any and different, is returned with the info r had until now, so the
	// caller can release it. A channel already at its member cap is not
	// joined: ch is nil and nothing is sent (the caller answers
	// channel_full).
	Join(r Recipient, name, protocol string, info protocol.MemberInfo, token string, binary bool) (ch *Channel, replaced Released)
	// Leave removes r from ch, sends LEFT to r (in its frame type) and to
	// the members allowed to see r (as text), and returns the grant token
	// r had joined with and r's info as it was when it left (SET_EXTRA
	// included), for re-arming that token. ok is false if r was not a
	// member.
	Leave(r Recipient, ch *Channel, binary bool) (left Released, ok bool)
	// SetExtra replaces member id's extra and tells the members allowed to
	// see id: everyone when id is an authority, else only the members with
	// mode 2 (authorities included); id itself is told only under the same
	// rule. It returns false if id is not a member.
	SetExtra(ch *Channel, id int64, extra []byte, binary bool) bool
	// Member returns member id's info.
	Member(ch *Channel, id int64) (protocol.MemberInfo, bool)
	// Members returns every member, in join order.
	Members(ch *Channel) []protocol.Member
	// Broadcast queues f for every member, or only for authorities when
	// authOnly, and returns how many it was queued for.
	Broadcast(ch *Channel, authOnly bool, f Frame) int
	// SendTo queues f for member id; false if id is not a member.
	SendTo(ch *Channel, id int64, f Frame) bool
	// Lookup returns the channel (name, protocol), or nil if it has no
	// members.
	Lookup(name, protocol string) *Channel
	// Channels returns how many channels have members.
	Channels() int
}
