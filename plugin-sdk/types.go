package sdk

import "time"

// Client describes a connection. Which fields are set depends on the hook:
// see Join, Message and TokenRequest.
type Client struct {
	// ID is the relay's client id.
	ID int64
	// Addr is the client's address as the relay sees it (IP, no port).
	Addr string
	// Origin is the Origin header of the WebSocket handshake, if any.
	Origin string
}

// Channel names a channel: the pair (Name, Protocol).
type Channel struct {
	Name     string
	Protocol string
	// ID is the relay's channel number; 0 in authorize-join and
	// on-token-create, which run before the channel exists for the client.
	ID int64
}

// Join is the input of authorize-join: a JOIN request and the outcome so
// far (the relay's built-in decision, as changed by earlier plugins).
type Join struct {
	Client  Client
	Channel Channel
	// Token is the JOIN's token field exactly as sent ("" when absent).
	Token string
	// Now is the host's clock when the hook was called.
	Now time.Time

	// Allowed is the outcome so far; when false, ErrorCode and Error say
	// what the client would get.
	Allowed   bool
	Authority bool
	Mode      int
	// Extra is the member's extra as a JSON object, nil when it has none.
	Extra     []byte
	ErrorCode string
	Error     string
}

// Message is the input of filter-message: one application message, before
// delivery. Sender has ID set; the sender's standing in the channel is in
// Authority, Mode and Extra.
type Message struct {
	Channel   Channel
	Sender    Client
	Authority bool
	Mode      int
	Extra     []byte
	// To is the recipient's id, or a negative number for a broadcast.
	To int64
	// Cmd is the application command.
	Cmd string
	// Body is every other field of the request (without the relay's own:
	// cmd, channel, to, success, from).
	Body Body
	Now  time.Time
}

// TokenRequest is the input of on-token-create: a GRANT request and the
// outcome so far.
type TokenRequest struct {
	Requester Client
	Channel   Channel
	// ClientMode, Extra and MakeAuth are what the token would carry.
	ClientMode int
	Extra      []byte
	MakeAuth   bool
	// Lifetime is how long the token stays valid for its first use.
	Lifetime time.Duration
	Now      time.Time

	Allowed   bool
	ErrorCode string
	Error     string
}

// Verdict is a hook's answer. Build one with Continue, Allow, Deny or Drop
// and change fields with the With methods; a hook ignores fields it does
// not use.
type Verdict struct {
	kind       uint8
	code, msg  string
	set        uint8
	authority  bool
	mode       int
	clientMode int
	lifetime   time.Duration
	extra      []byte
	body       []byte
}

const (
	setAuthority = 1 << iota
	setMode
	setClientMode
	setLifetime
	setExtra
	setBody
)

// Continue keeps the outcome so far (with any changes made by With
// methods). For filter-message it delivers the message.
func Continue() Verdict { return Verdict{kind: verdictContinue} }

// Allow makes the outcome "allowed" even if the relay or an earlier plugin
// refused (authorize-join, on-token-create). For filter-message it is the
// same as Continue.
func Allow() Verdict { return Verdict{kind: verdictAllow} }

// Deny refuses the request: the client gets an error frame with errorcode
// code (lowercase letters, digits and _, at most 64 bytes; empty means
// "plugin_denied") and message. For filter-message the message is dropped
// and the sender gets the error. Later plugins do not run.
func Deny(code, message string) Verdict {
	return Verdict{kind: verdictDeny, code: code, msg: message}
}

// Drop silently discards a message (filter-message only).
func Drop() Verdict { return Verdict{kind: verdictDrop} }

// WithAuthority sets whether the joining member is an authority
// (authorize-join).
func (v Verdict) WithAuthority(auth bool) Verdict {
	v.authority, v.set = auth, v.set|setAuthority
	return v
}

// WithMode sets the joining member's client mode, 0..2 (authorize-join).
func (v Verdict) WithMode(mode int) Verdict {
	v.mode, v.set = mode, v.set|setMode
	return v
}

// WithExtra sets the member's or token's extra, a JSON object, or nil for
// none (authorize-join, on-token-create).
func (v Verdict) WithExtra(extra []byte) Verdict {
	v.extra, v.set = extra, v.set|setExtra
	return v
}

// WithBody replaces the message body with a JSON object (filter-message).
func (v Verdict) WithBody(body []byte) Verdict {
	v.body, v.set = body, v.set|setBody
	return v
}

// WithClientMode sets the token's client mode, 0..2 (on-token-create).
func (v Verdict) WithClientMode(mode int) Verdict {
	v.clientMode, v.set = mode, v.set|setClientMode
	return v
}

// WithLifetime sets the token's lifetime (on-token-create); it is rounded
// down to milliseconds and must be positive.
func (v Verdict) WithLifetime(d time.Duration) Verdict {
	v.lifetime, v.set = d, v.set|setLifetime
	return v
}

// VerdictKind names what a Verdict does.
type VerdictKind uint8

// The verdict kinds, with their ABI numbers.
const (
	KindContinue VerdictKind = verdictContinue
	KindAllow    VerdictKind = verdictAllow
	KindDeny     VerdictKind = verdictDeny
	KindDrop     VerdictKind = verdictDrop
)

// Kind reports what v does.
func (v Verdict) Kind() VerdictKind { return VerdictKind(v.kind) }

// ErrorCode returns the errorcode of a Deny.
func (v Verdict) ErrorCode() string { return v.code }

// Message returns the error text of a Deny.
func (v Verdict) Message() string { return v.msg }

// Authority returns the authority set by WithAuthority, and whether it was set.
func (v Verdict) Authority() (bool, bool) { return v.authority, v.set&setAuthority != 0 }

// Mode returns the mode set by WithMode, and whether it was set.
func (v Verdict) Mode() (int, bool) { return v.mode, v.set&setMode != 0 }

// ClientMode returns the client mode set by WithClientMode, and whether it was set.
func (v Verdict) ClientMode() (int, bool) { return v.clientMode, v.set&setClientMode != 0 }

// Lifetime returns the lifetime set by WithLifetime, and whether it was set.
func (v Verdict) Lifetime() (time.Duration, bool) { return v.lifetime, v.set&setLifetime != 0 }

// Extra returns the extra set by WithExtra, and whether it was set.
func (v Verdict) Extra() ([]byte, bool) { return v.extra, v.set&setExtra != 0 }

// Body returns the body set by WithBody, and whether it was set.
func (v Verdict) Body() ([]byte, bool) { return v.body, v.set&setBody != 0 }
