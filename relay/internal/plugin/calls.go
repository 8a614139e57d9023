package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// JoinOutcome is the decision on a JOIN: the relay's built-in one going in,
// the final one coming out of AuthorizeJoin.
type JoinOutcome struct {
	// Allowed is true when the client may join; otherwise ErrorCode and
	// Error are what it gets.
	Allowed bool
	// Authority, Mode and Extra describe the membership when allowed.
	// Extra nil means none (false on the wire).
	Authority bool
	Mode      int
	Extra     json.RawMessage
	ErrorCode string
	Error     string
}

// JoinRequest is a JOIN as authorize-join sees it.
type JoinRequest struct {
	ClientID int64
	Addr     string
	Origin   string
	// Token is the request's token field as sent ("" when absent).
	Token    string
	Channel  string
	Protocol string
	// Builtin is the relay's own decision.
	Builtin JoinOutcome
}

// AuthorizeJoin runs the authorize-join chain and returns the final
// decision. Each plugin sees the outcome left by the previous one; the first
// deny wins. A failing plugin is logged and, under the closed policy,
// refuses the join with CodeFailed, CodeTimeout or CodeBadOutput.
func (h *Host) AuthorizeJoin(ctx context.Context, req *JoinRequest) JoinOutcome {
	out := req.Builtin
	if !h.Enabled(AuthorizeJoin) {
		return out
	}
	if len(req.Token) > h.cfg.MaxTokenBytes {
		return JoinOutcome{ErrorCode: CodeTokenTooLarge, Error: fmt.Sprintf("The token is longer than %d bytes.", h.cfg.MaxTokenBytes)}
	}
	w := h.writer()
	defer h.writers.Put(w)
	for _, p := range h.chains[AuthorizeJoin] {
		w.reset()
		w.int(tagClientID, req.ClientID)
		w.str(tagClientAddr, req.Addr)
		w.str(tagClientOrigin, req.Origin)
		w.str(tagToken, req.Token)
		w.str(tagChannelName, req.Channel)
		w.str(tagChannelProtocol, req.Protocol)
		w.int(tagNow, time.Now().UnixNano())
		w.bool(tagAllowed, out.Allowed)
		w.bool(tagAuthority, out.Authority)
		w.int(tagMode, int64(out.Mode))
		if out.Extra != nil {
			w.bytes(tagExtra, out.Extra)
		}
		if !out.Allowed {
			w.str(tagErrorCode, out.ErrorCode)
			w.str(tagMessage, out.Error)
		}
		start := time.Now()
		a, err := p.call(ctx, AuthorizeJoin, req.Addr, w.b)
		var next JoinOutcome
		if err == nil {
			next, err = h.applyJoin(out, &a)
		}
		h.observe(p, AuthorizeJoin, start, a.verdict, err)
		if err == nil {
			out = next
			if a.verdict == verdictDeny {
				return out
			}
			continue
		}
		if h.fail(p, AuthorizeJoin, err) {
			code, text := failureCode(err)
			return JoinOutcome{ErrorCode: code, Error: text}
		}
	}
	return out
}

func (h *Host) applyJoin(out JoinOutcome, a *answer) (JoinOutcome, error) {
	if a.verdict == verdictDeny {
		code, msg, err := checkDeny(a)
		if err != nil {
			return out, err
		}
		return JoinOutcome{ErrorCode: code, Error: msg}, nil
	}
	if a.set&hasAuthority != 0 {
		out.Authority = a.authority
	}
	if a.set&hasMode != 0 {
		if err := checkMode(a.mode, "mode"); err != nil {
			return out, err
		}
		out.Mode = int(a.mode)
	}
	if a.set&hasExtra != 0 {
		x, err := h.checkExtra(a.extra)
		if err != nil {
			return out, err
		}
		out.Extra = x
	}
	if a.verdict == verdictAllow && !out.Allowed {
		out.Allowed, out.ErrorCode, out.Error = true, "", ""
	}
	if out.Authority {
		out.Mode = 2
	}
	return out, nil
}

// MessageAction is what happens to a filtered message.
type MessageAction int

const (
	// Deliver sends the message (possibly with a rewritten body).
	Deliver MessageAction = iota
	// Drop discards the message silently.
	Drop
	// Reject discards the message and sends the sender an error frame.
	Reject
)

// MessageRequest is an application message as filter-message sees it.
type MessageRequest struct {
	ChannelID int64
	Channel   string
	Protocol  string
	SenderID  int64
	// Addr is the sender's address (not shown to plugins): calls from one
	// address share the pool fairly with everyone else's.
	Addr string
	// Authority, Mode and Extra describe the sender's membership.
	Authority bool
	Mode      int
	Extra     json.RawMessage
	To        int64
	Cmd       string
	// Body is a JSON object: the request's fields except cmd, channel and to.
	Body []byte
}

// MessageOutcome is the result of FilterMessage.
type MessageOutcome struct {
	Action MessageAction
	// Body is the body to deliver: the request's, or a plugin's rewrite.
	Body []byte
	// Rewritten is true when a plugin replaced the body.
	Rewritten bool
	// ErrorCode and Error are the sender's error frame when Action is Reject.
	ErrorCode string
	Error     string
}

// FilterMessage runs the filter-message chain on one message. Each plugin
// sees the body left by the previous one; the first drop or deny wins.
func (h *Host) FilterMessage(ctx context.Context, req *MessageRequest) MessageOutcome {
	out := MessageOutcome{Action: Deliver, Body: req.Body}
	if !h.Enabled(FilterMessage) {
		return out
	}
	w := h.writer()
	defer h.writers.Put(w)
	var index []byte
	index, err := indexObject(req.Body, w.idx[:0])
	if err != nil {
		return MessageOutcome{Action: Reject, ErrorCode: CodeFailed, Error: "message body is not a JSON object"}
	}
	w.idx = index
	for _, p := range h.chains[FilterMessage] {
		w.reset()
		w.int(tagClientID, req.SenderID)
		w.str(tagChannelName, req.Channel)
		w.str(tagChannelProtocol, req.Protocol)
		w.int(tagChannelID, req.ChannelID)
		w.int(tagNow, time.Now().UnixNano())
		w.bool(tagAuthority, req.Authority)
		w.int(tagMode, int64(req.Mode))
		if req.Extra != nil {
			w.bytes(tagExtra, req.Extra)
		}
		w.int(tagTo, req.To)
		w.str(tagCmd, req.Cmd)
		w.bytes(tagBody, out.Body)
		w.bytes(tagBodyIndex, w.idx)
		start := time.Now()
		a, err := p.call(ctx, FilterMessage, req.Addr, w.b)
		var code, msg string
		var idx []byte
		if err == nil {
			switch {
			case a.verdict == verdictDeny:
				code, msg, err = checkDeny(&a)
			case a.verdict != verdictDrop && a.set&hasBody != 0 && len(a.body) > h.cfg.MaxBodyBytes:
				err = fmt.Errorf("%w: rewritten body of %d bytes is over the %d-byte message limit", ErrBadOutput, len(a.body), h.cfg.MaxBodyBytes)
			case a.verdict != verdictDrop && a.set&hasBody != 0:
				if idx, err = indexObject(a.body, w.idx[:0]); err != nil || !utf8.Valid(a.body) || !json.Valid(a.body) {
					err = fmt.Errorf("%w: rewritten body is not a JSON object in UTF-8", ErrBadOutput)
				}
			}
		}
		h.observe(p, FilterMessage, start, a.verdict, err)
		if err == nil {
			switch {
			case a.verdict == verdictDrop:
				return MessageOutcome{Action: Drop}
			case a.verdict == verdictDeny:
				return MessageOutcome{Action: Reject, ErrorCode: code, Error: msg}
			case a.set&hasBody != 0:
				w.idx = idx
				out.Body, out.Rewritten = a.body, true
			}
			continue
		}
		if h.fail(p, FilterMessage, err) {
			code, text := failureCode(err)
			return MessageOutcome{Action: Reject, ErrorCode: code, Error: text}
		}
	}
	return out
}

// TokenOutcome is the decision on a GRANT: the relay's built-in one going
// in, the final one coming out of OnTokenCreate.
type TokenOutcome struct {
	// Allowed is true when the token may be minted; otherwise ErrorCode
	// and Error are what the requester gets.
	Allowed    bool
	ClientMode int
	// Extra is the token's extra (a JSON object; nil for none).
	Extra    json.RawMessage
	MakeAuth bool
	// Lifetime is how long the token is valid for its first use.
	Lifetime  time.Duration
	ErrorCode string
	Error     string
}

// TokenRequest is a GRANT as on-token-create sees it.
type TokenRequest struct {
	ClientID int64
	Addr     string
	Origin   string
	Channel  string
	Protocol string
	// Builtin is the relay's own decision and the token it would mint.
	Builtin TokenOutcome
}

// OnTokenCreate runs the on-token-create chain. Plugins may change the
// token's client mode, extra and lifetime, allow or deny; MakeAuth is
// theirs to see, not to change.
func (h *Host) OnTokenCreate(ctx context.Context, req *TokenRequest) TokenOutcome {
	out := req.Builtin
	if !h.Enabled(OnTokenCreate) {
		return out
	}
	w := h.writer()
	defer h.writers.Put(w)
	for _, p := range h.chains[OnTokenCreate] {
		w.reset()
		w.int(tagClientID, req.ClientID)
		w.str(tagClientAddr, req.Addr)
		w.str(tagClientOrigin, req.Origin)
		w.str(tagChannelName, req.Channel)
		w.str(tagChannelProtocol, req.Protocol)
		w.int(tagNow, time.Now().UnixNano())
		w.bool(tagAllowed, out.Allowed)
		w.int(tagClientMode, int64(out.ClientMode))
		if out.Extra != nil {
			w.bytes(tagExtra, out.Extra)
		}
		w.bool(tagMakeAuth, out.MakeAuth)
		w.int(tagLifetime, out.Lifetime.Milliseconds())
		if !out.Allowed {
			w.str(tagErrorCode, out.ErrorCode)
			w.str(tagMessage, out.Error)
		}
		start := time.Now()
		a, err := p.call(ctx, OnTokenCreate, req.Addr, w.b)
		var next TokenOutcome
		if err == nil {
			next, err = h.applyToken(out, &a)
		}
		h.observe(p, OnTokenCreate, start, a.verdict, err)
		if err == nil {
			out = next
			if a.verdict == verdictDeny {
				return out
			}
			continue
		}
		if h.fail(p, OnTokenCreate, err) {
			code, text := failureCode(err)
			return TokenOutcome{ErrorCode: code, Error: text}
		}
	}
	return out
}

func (h *Host) applyToken(out TokenOutcome, a *answer) (TokenOutcome, error) {
	if a.verdict == verdictDeny {
		code, msg, err := checkDeny(a)
		if err != nil {
			return out, err
		}
		return TokenOutcome{ErrorCode: code, Error: msg}, nil
	}
	if a.set&hasClientMode != 0 {
		if err := checkMode(a.clientMode, "clientmode"); err != nil {
			return out, err
		}
		out.ClientMode = int(a.clientMode)
	}
	if a.set&hasExtra != 0 {
		x, err := h.checkExtra(a.extra)
		if err != nil {
			return out, err
		}
		out.Extra = x
	}
	if a.set&hasLifetime != 0 {
		if a.lifetimeMs <= 0 {
			return out, fmt.Errorf("%w: lifetime %d ms is not positive", ErrBadOutput, a.lifetimeMs)
		}
		// Cut, not refused: the plugin's intent (a long-lived token) is
		// served as far as the relay allows.
		out.Lifetime = min(time.Duration(min(a.lifetimeMs, math.MaxInt64/int64(time.Millisecond)))*time.Millisecond, h.cfg.MaxLifetime)
	}
	if a.verdict == verdictAllow && !out.Allowed {
		out.Allowed, out.ErrorCode, out.Error = true, "", ""
	}
	return out, nil
}

// call runs one hook of one plugin on input for the client at addr (the
// pool's fairness key). The call's deadline covers the wait for a free
// instance as well as the guest's run.
func (p *loaded) call(ctx context.Context, hook Hook, addr string, input []byte) (a answer, err error) {
	deadline := time.Now().Add(p.host.cfg.Timeout)
	in, err := p.pool.get(ctx, addr, deadline)
	if err != nil {
		return answer{}, err
	}
	start := time.Now()
	a, err = in.invokeHook(in.hooks[hook], input, deadline)
	ran := time.Since(start)
	if err == nil && hookTable[hook].verdicts&(1<<a.verdict) == 0 {
		err = fmt.Errorf("%w: verdict %d is not allowed for %s", ErrBadOutput, a.verdict, hook)
	}
	if err != nil && !errors.Is(err, ErrPluginError) {
		p.pool.discard(in, addr, ran)
	} else {
		p.pool.put(in, addr, ran)
	}
	return a, err
}
