// Package protocol is the DRC wire protocol (version 1): request decoding
// and validation helpers, frame encoding with the reference server's key
// order, and the table of error codes and close codes.
//
// It does no I/O and keeps no state, so the server, the Go client and the
// load generator share it.
package protocol

// Request commands the server understands. Any other cmd is an application
// message.
const (
	CmdGrant    = "GRANT"
	CmdJoin     = "JOIN"
	CmdSetExtra = "SET_EXTRA"
	CmdLeave    = "LEAVE"
)

// Server-only commands. A client may not send them.
const (
	CmdGranted = "GRANTED"
	CmdJoined  = "JOINED"
	CmdLeft    = "LEFT"
)

// Client modes of a channel member.
const (
	ModeRecvOnly    = 0 // may not send
	ModeSendToAuths = 1 // may send to authorities only
	ModeSendToAny   = 2 // may send to anyone; authorities always have it
)

// Limits from the protocol.
const (
	MaxChannelNameBytes = 256
	MaxProtocolBytes    = 64
	// BroadcastTo is the canonical `to` for a broadcast; any negative value
	// means broadcast.
	BroadcastTo = -1
)

// MemberInfo is what members of a channel see of one member: the `info`
// object of JOINED and the values of the `clients` map.
type MemberInfo struct {
	Auth bool
	Mode int
	// Extra is the member's extra data as compact JSON (an object or an
	// array), or nil, which is encoded as `false`: an authority that joined
	// without a grant token has no extra.
	Extra []byte
}

// Member is one entry of a JOINED frame's `clients` map.
type Member struct {
	ID   int64
	Info MemberInfo
}
