package relay

import (
	"errors"
	"slices"
	"sync"

	"github.com/relay-project/relay/relay/internal/hub"
	"github.com/relay-project/relay/relay/internal/metrics"
	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/internal/token"
	"github.com/relay-project/relay/relay/protocol"
)

// membership is the client's own view of one channel it is in.
type membership struct {
	ch   *hub.Channel
	auth bool
	mode int
}

// Request kinds, indexing Server.reqs; the names are metric label values.
const (
	kindInvalid = iota
	kindGrant
	kindJoin
	kindSetExtra
	kindLeave
	kindMessage
)

var requestKinds = [...]string{
	kindInvalid:  metrics.KindInvalid,
	kindGrant:    metrics.KindGrant,
	kindJoin:     metrics.KindJoin,
	kindSetExtra: metrics.KindSetExtra,
	kindLeave:    metrics.KindLeave,
	kindMessage:  metrics.KindMessage,
}

// requests recycles decoded requests across clients, so an idle client
// keeps no field table (a JOIN's grows to 8 fields, 512 bytes).
var requests = sync.Pool{New: func() any { return new(protocol.Request) }}

// handle runs one request. Every check follows the protocol page's order;
// every failure answers the requester alone, in its request's frame type.
func (c *conn) handle(data []byte, binary bool) {
	req := requests.Get().(*protocol.Request)
	defer func() {
		clear(req.Fields) // drop references into data
		requests.Put(req)
	}()
	c.kind = kindInvalid
	if err := protocol.Decode(data, req); err != nil {
		c.srv.reqs[kindInvalid].Inc()
		if err == protocol.ErrInvalidData {
			c.replyError(binary, 0, protocol.CodeInvalidData)
		} else {
			c.replyError(binary, 0, protocol.CodeMissingInvalidCmd)
		}
		return
	}
	switch req.Cmd {
	case protocol.CmdGrant:
		c.kind = kindGrant
	case protocol.CmdJoin:
		c.kind = kindJoin
	case protocol.CmdSetExtra:
		c.kind = kindSetExtra
	case protocol.CmdLeave:
		c.kind = kindLeave
	default:
		c.kind = kindMessage
	}
	c.srv.reqs[c.kind].Inc()
	c.run(req, binary) // readpark.go: serveRequest, on or off the reader
}

// serveRequest runs a decoded request of kind c.kind.
func (c *conn) serveRequest(req *protocol.Request, binary bool) {
	switch c.kind {
	case kindGrant:
		c.grant(req, binary)
	case kindJoin:
		c.join(req, binary)
	case kindSetExtra:
		c.setExtra(req, binary)
	case kindLeave:
		c.leave(req, binary)
	default:
		c.message(req, binary)
	}
}

func (c *conn) replyError(binary bool, channel int64, code protocol.Code) {
	c.srv.metrics.Errors.WithLabelValues(requestKinds[c.kind], string(code)).Inc()
	c.Send(hub.Frame{Data: protocol.AppendError(nil, channel, code, ""), Binary: binary})
}

// isAuthority reports whether the client is a permanent authority for
// protocol: by address (unless ipAuth is false) or by static token.
func (c *conn) isAuthority(req *protocol.Request, proto string, ipAuth bool) bool {
	if (ipAuth && c.srv.auths.ByAddr(c.addr, proto)) || c.srv.auths.ByToken(protocol.Token(req), proto) {
		c.proveAuthority()
		return true
	}
	return false
}

// grant mints a grant token. Only permanent authorities may.
func (c *conn) grant(req *protocol.Request, binary bool) {
	name, ok := protocol.ChannelName(req)
	if !ok {
		c.replyError(binary, 0, protocol.CodeMissingInvalidChannel)
		return
	}
	proto, ok := protocol.ProtocolName(req)
	if !ok {
		c.replyError(binary, 0, protocol.CodeMissingInvalidProtocol)
		return
	}
	mode, ok := protocol.ClientMode(req)
	if !ok {
		c.replyError(binary, 0, protocol.CodeMissingInvalidMode)
		return
	}
	extra, ok := protocol.Extra(req)
	if !ok {
		c.replyError(binary, 0, protocol.CodeMissingInvalidExtra)
		return
	}
	if len(extra) > c.srv.cfg.MaxExtraBytes {
		c.replyError(binary, 0, protocol.CodeExtraTooLarge)
		return
	}
	makeauth, ttl := protocol.Flag(req, "makeauth", "true"), c.srv.cfg.TokenTTL
	if allowed := c.isAuthority(req, proto, true); c.srv.plugins.Enabled(plugin.OnTokenCreate) {
		if mode, extra, ttl, ok = c.onTokenCreate(name, proto, mode, extra, makeauth, allowed, binary); !ok {
			return
		}
	} else if !allowed {
		c.replyError(binary, 0, protocol.CodeAccessDenied)
		return
	}
	if ch := c.srv.hub.Lookup(name, proto); ch != nil {
		// The token is kept while its member stays joined: for a channel
		// that exists, share its name strings instead of holding copies
		// (48 bytes per member of a typical channel).
		name, proto = ch.Name, ch.Protocol
	}
	g := token.Grant{Channel: name, Protocol: proto, Mode: mode, Extra: extra, MakeAuth: makeauth}
	ctx, cancel := c.srv.opContext()
	defer cancel()
	tok, _, err := c.srv.tokens.Mint(ctx, g, ttl)
	if errors.Is(err, token.ErrFull) {
		c.srv.metrics.Refused.WithLabelValues(metrics.RefusedTokenStoreFull).Inc()
		c.replyError(binary, 0, protocol.CodeTokenLimitReached)
		return
	}
	if err != nil {
		c.log().Error("minting a grant token failed", "err", err)
		c.replyError(binary, 0, protocol.CodeUnavailable)
		return
	}
	c.Send(hub.Frame{Data: protocol.AppendGranted(nil, tok, name, proto), Binary: binary})
}

// join adds the client to a channel as an authority or with a grant token.
// In order: who joins (a permanent authority, or the bearer of a grant
// token the store lets this client claim); the channel cap; the
// authorize-join hook, which may overturn the relay's refusal; then the
// membership itself. A token claimed on the way is released on every
// refusal after the claim.
func (c *conn) join(req *protocol.Request, binary bool) {
	name, ok := protocol.ChannelName(req)
	if !ok {
		c.replyError(binary, 0, protocol.CodeMissingInvalidChannel)
		return
	}
	proto, ok := protocol.ProtocolName(req)
	if !ok {
		c.replyError(binary, 0, protocol.CodeMissingInvalidProtocol)
		return
	}
	ctx, cancel := c.srv.opContext()
	defer cancel()
	current := c.memberOf(name, proto)
	counted := current != nil && !current.auth // already counts toward the cap
	atCap := func() bool { return !counted && int(c.nonAuth) >= c.srv.cfg.MaxChannelsPerClient }
	hooked := c.srv.plugins.Enabled(plugin.AuthorizeJoin)

	// 1. Who joins.
	info := protocol.MemberInfo{Auth: true, Mode: protocol.ModeSendToAny}
	held := ""                // the grant token the membership will hold
	var g token.Grant         // what held gives: its claim, or the member's state on a repeated JOIN
	claimed := ""             // the token this JOIN claimed ("" for none): a refusal releases it
	var refused protocol.Code // the relay's refusal, which authorize-join may overturn
	if !c.isAuthority(req, proto, !protocol.Flag(req, "ipauth", "false")) {
		tok := protocol.Token(req)
		err := token.ErrUnknown
		if current != nil && tok != "" {
			if had, now, ok := c.srv.hub.Held(current.ch, c.id); ok && had == tok {
				// A repeated JOIN with the token this membership holds:
				// nothing to claim, and the member keeps what it has now
				// (SET_EXTRA included), as a rejoin after a blip would
				// give it back. A refusal leaves the token with it.
				g = grantOf(current.ch, now)
				err = nil
				held = had
			}
		}
		if tok != "" && held == "" {
			if g, err = c.srv.tokens.Claim(ctx, tok, name, proto, c.id); err == nil {
				held, claimed = tok, tok
			}
		}
		switch {
		case err == nil:
			if g.MakeAuth {
				info.Extra = g.Extra
			} else {
				info = protocol.MemberInfo{Auth: false, Mode: g.Mode, Extra: g.Extra}
			}
		case !token.Refused(err):
			c.log().Error("claiming a grant token failed", "err", err)
			c.replyError(binary, 0, protocol.CodeUnavailable)
			return
		default:
			refused = protocol.CodeAccessDenied
		}
		// 2. The channel cap, for every member that is not an authority
		// (a refused one would be a guest if the hook let it in).
		if (refused != "" || !info.Auth) && atCap() {
			c.release(claimed, g)
			c.replyError(binary, 0, protocol.CodeMaxChannelLimitReached)
			return
		}
		if refused != "" && !hooked {
			c.debug("join refused", "reason", err)
			c.replyError(binary, 0, refused)
			return
		}
	}

	// 3. The authorize-join hook.
	if hooked {
		var ok bool
		if info, ok = c.authorizeJoin(req, name, proto, info, refused, binary); ok && !info.Auth && atCap() {
			c.replyError(binary, 0, protocol.CodeMaxChannelLimitReached)
			ok = false
		}
		if !ok {
			c.release(claimed, g)
			return
		}
	}

	// 4. The membership: JOINED and the retained replay to the client,
	// JOINED to the others.
	var before protocol.MemberInfo // a re-join's info until now, for the token it replaces
	if current != nil {
		before, _ = c.srv.hub.Member(current.ch, c.id)
	}
	ch, replaced, err := c.srv.hub.Join(ctx, c, name, proto, info, held, binary, c.srv.replay(binary))
	if errors.Is(err, hub.ErrChannelFull) {
		c.release(claimed, g)
		c.replyError(binary, 0, protocol.CodeChannelFull)
		return
	}
	if err != nil {
		c.release(claimed, g)
		c.log().Error("joining a channel failed", "err", err)
		c.replyError(binary, 0, protocol.CodeUnavailable)
		return
	}
	c.release(replaced, grantOf(ch, before))
	if counted {
		c.nonAuth--
	}
	if !info.Auth {
		c.nonAuth++
	}
	c.setMembership(&membership{ch: ch, auth: info.Auth, mode: info.Mode})
	c.joinedChannel()
	if info.Auth {
		c.proveAuthority()
	}
}

// release gives up the client's claim on tok ("" for none), re-arming it
// with now, the member's state at the end. It is best effort: a failure is
// logged and counted, and the token then cannot be used to rejoin.
func (c *conn) release(tok string, now token.Grant) {
	if tok == "" {
		return
	}
	ctx, cancel := c.srv.opContext()
	defer cancel()
	if err := c.srv.tokens.Release(ctx, tok, c.id, now); err != nil {
		c.srv.metrics.ReleaseErrors.Inc()
		c.log().Warn("releasing a grant token failed", "err", err)
	}
}

// memberOf returns the client's membership of (name, protocol), if any.
func (c *conn) memberOf(name, proto string) *membership {
	for _, m := range c.chans {
		if m.ch.Name == name && m.ch.Protocol == proto {
			return m
		}
	}
	return nil
}

// membership returns the client's membership of channel n, or nil.
func (c *conn) membership(n int64) *membership {
	for _, m := range c.chans {
		if m.ch.ID == n {
			return m
		}
	}
	return nil
}

// setMembership adds m, or replaces the membership of the same channel.
func (c *conn) setMembership(m *membership) {
	for i, o := range c.chans {
		if o.ch.ID == m.ch.ID {
			c.chans[i] = m
			return
		}
	}
	c.chans = append(c.chans, m)
}

// channelOf resolves the request's channel number to one of the client's
// memberships, answering the error itself when it cannot.
func (c *conn) channelOf(req *protocol.Request, binary bool) *membership {
	n, code := protocol.ChannelNumber(req)
	if code != "" {
		c.replyError(binary, 0, code)
		return nil
	}
	m := c.membership(n)
	if m == nil {
		c.replyError(binary, 0, protocol.CodeInvalidChannel)
	}
	return m
}

// setExtra replaces a member's extra; authorities only.
func (c *conn) setExtra(req *protocol.Request, binary bool) {
	m := c.channelOf(req, binary)
	if m == nil {
		return
	}
	if !m.auth {
		c.replyError(binary, 0, protocol.CodeAccessDenied)
		return
	}
	raw, _ := req.Get("id")
	id, ok := protocol.Int(raw)
	if ok {
		_, ok = c.srv.hub.Member(m.ch, id)
	}
	if !ok {
		c.replyError(binary, 0, protocol.CodeInvalidID)
		return
	}
	extra, ok := protocol.Extra(req)
	if !ok {
		c.replyError(binary, 0, protocol.CodeMissingInvalidExtra)
		return
	}
	if len(extra) > c.srv.cfg.MaxExtraBytes {
		c.replyError(binary, 0, protocol.CodeExtraTooLarge)
		return
	}
	ctx, cancel := c.srv.opContext()
	defer cancel()
	switch ok, err := c.srv.hub.SetExtra(ctx, m.ch, id, extra, binary); {
	case err != nil:
		c.log().Error("setting a member's extra failed", "err", err)
		c.replyError(binary, 0, protocol.CodeUnavailable)
	case !ok:
		c.replyError(binary, 0, protocol.CodeInvalidID) // left meanwhile
	}
}

// leave removes the client from a channel.
func (c *conn) leave(req *protocol.Request, binary bool) {
	m := c.channelOf(req, binary)
	if m == nil {
		return
	}
	c.leaveChannel(m, binary)
}

// leaveChannel releases the membership's token first, then leaves: whoever
// hears LEFT (the leaver included, in a cluster the other instances too)
// can use the token at once.
func (c *conn) leaveChannel(m *membership, binary bool) {
	held, now, _ := c.srv.hub.Held(m.ch, c.id)
	c.release(held, grantOf(m.ch, now))
	if tok, _ := c.srv.hub.Leave(c, m.ch, binary); tok != held {
		c.release(tok, grantOf(m.ch, now)) // replaced meanwhile
	}
	if !m.auth {
		c.nonAuth--
	}
	c.chans = slices.DeleteFunc(c.chans, func(o *membership) bool { return o == m })
	if len(c.chans) == 0 {
		c.armJoinTimeout() // not once closing: leaveAll runs then
	}
}

// grantOf is what a token held by a member of ch with info is re-armed
// with.
func grantOf(ch *hub.Channel, info protocol.MemberInfo) token.Grant {
	return token.Grant{Channel: ch.Name, Protocol: ch.Protocol, Mode: info.Mode, Extra: info.Extra, MakeAuth: info.Auth}
}

// leaveAll leaves every channel, as on disconnect.
func (c *conn) leaveAll() {
	for len(c.chans) > 0 {
		c.leaveChannel(c.chans[len(c.chans)-1], false)
	}
}

// message delivers an application message: to one member, or to every
// member (only the authorities when the sender's mode is 1).
func (c *conn) message(req *protocol.Request, binary bool) {
	m := c.channelOf(req, binary)
	if m == nil {
		return
	}
	n := m.ch.ID
	if m.mode == protocol.ModeRecvOnly {
		c.replyError(binary, n, protocol.CodeAccessDenied)
		return
	}
	raw, ok := req.Get("to")
	if !ok {
		c.replyError(binary, n, protocol.CodeMissingTo)
		return
	}
	to, ok := protocol.Int(raw)
	if !ok {
		c.replyError(binary, n, protocol.CodeInvalidTo)
		return
	}
	authOnly := m.mode == protocol.ModeSendToAuths
	if to >= 0 {
		info, ok := c.srv.hub.Member(m.ch, to)
		if !ok || authOnly && !info.Auth {
			c.replyError(binary, n, protocol.CodeInvalidTo)
			return
		}
	}
	if c.srv.plugins.Enabled(plugin.FilterMessage) {
		if req = c.filterMessage(req, m, to, binary); req == nil {
			return
		}
	}
	data := protocol.AppendMessageHead(make([]byte, 0, len(req.Fields)*16+64+len(req.Cmd)), n, c.id)
	tail := len(data)
	msg := hub.Message{Frame: hub.Frame{Data: protocol.AppendMessageTail(data, req), Binary: binary}, From: c.id, Tail: tail}
	c.srv.metrics.MessagesIn.Inc()
	if to < 0 {
		c.srv.metrics.Deliveries.Add(float64(c.srv.hub.Broadcast(m.ch, authOnly, msg)))
	} else if c.srv.hub.SendTo(m.ch, to, msg) {
		c.srv.metrics.Deliveries.Inc()
	}
}
