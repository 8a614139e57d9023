package relay

import (
	"context"
	"errors"
	"sync"

	"github.com/relay-project/relay/relay/internal/hub"
	"github.com/relay-project/relay/relay/internal/metrics"
	"github.com/relay-project/relay/relay/internal/plugin"
	"github.com/relay-project/relay/relay/internal/token"
	"github.com/relay-project/relay/relay/protocol"
)

// membership is the client's own view of one channel it is in.
type membership struct {
	ch    *hub.Channel
	auth  bool
	mode  int
	token string // the grant token it holds; "" for none
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
	g := token.Grant{Channel: name, Protocol: proto, Mode: mode, Extra: extra, MakeAuth: makeauth}
	tok, _, err := c.srv.tokens.Mint(context.Background(), g, ttl)
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
	current := c.memberOf(name, proto)

	info := protocol.MemberInfo{Auth: true, Mode: protocol.ModeSendToAny}
	held := "" // the grant token this membership holds
	hooked := c.srv.plugins.Enabled(plugin.AuthorizeJoin)
	var refused protocol.Code // the built-in refusal authorize-join may overturn
	alreadyCounted := current != nil && !current.auth
	var g token.Grant // the grant claimed, if any
	if !c.isAuthority(req, proto, !protocol.Flag(req, "ipauth", "false")) {
		tok := protocol.Token(req)
		err := token.ErrUnknown
		if tok != "" {
			g, err = c.srv.tokens.Claim(context.Background(), tok, name, proto, c.id)
		}
		if err == nil && current != nil && current.token == tok {
			// A repeated JOIN with the token this membership holds: the
			// store gives the grant as last armed, but the member keeps
			// what it has now (SET_EXTRA included), as a rejoin after a
			// blip would give it back.
			if now, ok := c.srv.hub.Member(current.ch, c.id); ok {
				g.Mode, g.Extra, g.MakeAuth = now.Mode, now.Extra, now.Auth
			}
		}
		if err == nil && g.MakeAuth {
			info.Extra = g.Extra
		} else {
			if c.nonAuth >= c.srv.cfg.MaxChannelsPerClient && !alreadyCounted {
				if err == nil {
					c.srv.tokens.Release(context.Background(), tok, c.id, g)
				}
				c.replyError(binary, 0, protocol.CodeMaxChannelLimitReached)
				return
			}
			switch {
			case err == nil:
				info = protocol.MemberInfo{Auth: false, Mode: g.Mode, Extra: g.Extra}
			case hooked:
				refused, tok = protocol.CodeAccessDenied, ""
			default:
				c.debug("join refused", "reason", err)
				c.replyError(binary, 0, protocol.CodeAccessDenied)
				return
			}
		}
		held = tok
	}
	if hooked {
		var ok bool
		if info, ok = c.authorizeJoin(req, name, proto, info, refused, binary); ok && !info.Auth &&
			c.nonAuth >= c.srv.cfg.MaxChannelsPerClient && !alreadyCounted {
			c.replyError(binary, 0, protocol.CodeMaxChannelLimitReached)
			ok = false
		}
		if !ok {
			if held != "" {
				c.srv.tokens.Release(context.Background(), held, c.id, g)
			}
			return
		}
	}

	ch, replaced := c.srv.hub.Join(c, name, proto, info, held, binary)
	if ch == nil {
		if held != "" {
			c.srv.tokens.Release(context.Background(), held, c.id, g)
		}
		c.replyError(binary, 0, protocol.CodeChannelFull)
		return
	}
	c.release(replaced)
	if current != nil && !current.auth {
		c.nonAuth--
	}
	if !info.Auth {
		c.nonAuth++
	}
	c.chans[ch.ID] = &membership{ch: ch, auth: info.Auth, mode: info.Mode, token: held}
	c.joinedChannel()
	if info.Auth {
		c.proveAuthority()
	}
	c.srv.replayRetained(c, ch, binary)
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

// channelOf resolves the request's channel number to one of the client's
// memberships, answering the error itself when it cannot.
func (c *conn) channelOf(req *protocol.Request, binary bool) *membership {
	n, code := protocol.ChannelNumber(req)
	if code != "" {
		c.replyError(binary, 0, code)
		return nil
	}
	m := c.chans[n]
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
	if !c.srv.hub.SetExtra(m.ch, id, extra, binary) {
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

func (c *conn) leaveChannel(m *membership, binary bool) {
	left, _ := c.srv.hub.Leave(c, m.ch, binary)
	c.release(left)
	if !m.auth {
		c.nonAuth--
	}
	delete(c.chans, m.ch.ID)
	if len(c.chans) == 0 {
		c.armJoinTimeout() // not once closing: leaveAll runs then
	}
}

// release re-arms the grant token a membership held, carrying the state the
// member had at the end (its mode, its extra after any SET_EXTRA, its
// authority), so a client rejoining with the token gets that state back.
func (c *conn) release(r hub.Released) {
	if r.Token == "" {
		return
	}
	now := token.Grant{Mode: r.Info.Mode, Extra: r.Info.Extra, MakeAuth: r.Info.Auth}
	if err := c.srv.tokens.Release(context.Background(), r.Token, c.id, now); err != nil {
		c.log().Warn("releasing a grant token failed", "err", err)
	}
}

// leaveAll leaves every channel, as on disconnect.
func (c *conn) leaveAll() {
	for _, m := range c.chans {
		c.leaveChannel(m, false)
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
	f := hub.Frame{Data: protocol.AppendMessage(make([]byte, 0, len(req.Fields)*16+64+len(req.Cmd)), n, c.id, req), Binary: binary}
	c.srv.metrics.MessagesIn.Inc()
	if to < 0 {
		c.srv.metrics.Deliveries.Add(float64(c.srv.hub.Broadcast(m.ch, authOnly, f)))
	} else if c.srv.hub.SendTo(m.ch, to, f) {
		c.srv.metrics.Deliveries.Inc()
	}
}
