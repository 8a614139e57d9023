package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/relay-project/relay/relay/internal/httpapi"
	"github.com/relay-project/relay/relay/protocol"
)

// Message is a message the relay publishes as itself. Members receive
// {"channel":N,"success":true,"from":0,"cmd":Cmd, <Fields>}, exactly as
// from POST /v1/publish.
type Message struct {
	// Channel and Protocol name the channel.
	Channel, Protocol string
	// Cmd is the application command; not one of the protocol's own.
	Cmd string
	// To is the member to send to; 0 broadcasts (client ids are positive).
	To int64
	// Fields become the message's other fields: nil, or a value that
	// encodes to a JSON object (a struct or json.RawMessage keeps its
	// order, a map is sorted by key).
	Fields any
	// Retain keeps a broadcast for members who join within it, rounded up
	// to whole seconds and at most RELAY_RETAIN_MAX; 0 does not retain.
	Retain time.Duration
}

// Published reports what Publish did.
type Published struct {
	// Channel is the channel's number; 0 when it has no members.
	Channel int64
	// Delivered counts the members the message was queued for.
	Delivered int
	// Dropped reports that a filter-message plugin dropped the message:
	// it reached no one and was not retained.
	Dropped bool
	// RetainedUntil is when the retained message expires; zero when the
	// message was not retained.
	RetainedUntil time.Time
}

// TokenRequest asks for a grant token, as POST /v1/tokens does.
type TokenRequest struct {
	// Channel and Protocol name the channel the token is for.
	Channel, Protocol string
	// ClientMode is the joiner's mode: protocol.ModeRecvOnly (0),
	// ModeSendToAuths (1) or ModeSendToAny (2).
	ClientMode int
	// Extra is attached to the joiner: nil, or a value that encodes to a
	// JSON object.
	Extra any
	// MakeAuth makes the joiner an authority of the channel.
	MakeAuth bool
	// Lifetime, when positive, shortens the token's lifetime (rounded up
	// to whole seconds, at most RELAY_TOKEN_TTL).
	Lifetime time.Duration
}

// Token is a minted grant token.
type Token struct {
	Token   string
	Expires time.Time
	// ClientMode is the token's client mode: the request's, or the one an
	// on-token-create plugin chose.
	ClientMode int
}

// Error is the relay refusing a Publish or MintToken, with the status and
// errorcode the HTTP API would answer.
type Error struct {
	Status  int
	Code    protocol.Code
	Message string
}

// Error returns the message and code.
func (e *Error) Error() string { return fmt.Sprintf("relay: %s (%s)", e.Message, e.Code) }

// Publish sends m to its channel as the relay (from 0), with the rules and
// limits of POST /v1/publish, for programs that embed the relay.
func (s *Server) Publish(ctx context.Context, m Message) (Published, error) {
	body := map[string]any{"channel": m.Channel, "protocol": m.Protocol, "cmd": m.Cmd}
	if m.To != 0 {
		body["to"] = m.To
	}
	if m.Fields != nil {
		body["fields"] = m.Fields
	}
	if m.Retain > 0 {
		body["retain"] = int64((m.Retain + time.Second - 1) / time.Second)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return Published{}, fmt.Errorf("relay: publish: %w", err)
	}
	p, err := s.api.ParsePublication(data)
	if err != nil {
		return Published{}, fmt.Errorf("relay: publish: %w", asError(err))
	}
	res, err := apiBackend{s}.Publish(ctx, p)
	if err != nil {
		return Published{}, fmt.Errorf("relay: publish: %w", asError(err))
	}
	return Published{Channel: res.Channel, Delivered: res.Delivered, Dropped: res.Dropped, RetainedUntil: res.RetainedUntil}, nil
}

// MintToken mints a grant token with the rules of POST /v1/tokens (and of
// GRANT), for programs that embed the relay.
func (s *Server) MintToken(ctx context.Context, req TokenRequest) (Token, error) {
	body := map[string]any{"channel": req.Channel, "protocol": req.Protocol, "clientmode": req.ClientMode}
	if req.Extra != nil {
		body["extra"] = req.Extra
	}
	if req.MakeAuth {
		body["makeauth"] = true
	}
	if req.Lifetime > 0 {
		body["lifetime"] = int64((req.Lifetime + time.Second - 1) / time.Second)
	}
	data, err := json.Marshal(body)
	if err != nil {
		return Token{}, fmt.Errorf("relay: mint token: %w", err)
	}
	spec, err := s.api.ParseTokenSpec(data)
	if err != nil {
		return Token{}, fmt.Errorf("relay: mint token: %w", asError(err))
	}
	tok, err := apiBackend{s}.MintToken(ctx, spec)
	if err != nil {
		return Token{}, fmt.Errorf("relay: mint token: %w", asError(err))
	}
	return Token{Token: tok.Token, Expires: tok.Expires, ClientMode: tok.ClientMode}, nil
}

// asError turns an httpapi refusal into an *Error.
func asError(err error) error {
	var e *httpapi.Error
	if errors.As(err, &e) {
		return &Error{Status: e.Status, Code: protocol.Code(e.Code), Message: e.Message}
	}
	return err
}
