package relay

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/relay-project/relay/relay/internal/httpapi"
	"github.com/relay-project/relay/relay/internal/hub"
	"github.com/relay-project/relay/relay/internal/retain"
	"github.com/relay-project/relay/relay/internal/token"
	"github.com/relay-project/relay/relay/protocol"
)

// This file connects the HTTP API (internal/httpapi, mounted at /v1/) and
// retained messages (internal/retain) to the relay: the API authorises
// callers with the same authorities as the WebSocket side, mints tokens in
// the same store and publishes through the same hub.

// apiBackend implements httpapi.Backend for a Server.
type apiBackend struct{ s *Server }

var _ httpapi.Backend = apiBackend{}

// newAPI builds the HTTP API handler and the retained-message store.
func (s *Server) newAPI() {
	s.retained = retain.New(&retain.Options{Now: s.cfg.Now, MaxMessages: s.cfg.RetainMaxMessages, MaxBytes: int64(s.cfg.RetainMaxBytes)})
	s.api = httpapi.New(apiBackend{s}, httpapi.Config{
		MaxBodyBytes:  int64(s.cfg.HTTPMaxBodyBytes),
		RetainMax:     s.cfg.RetainMax,
		GrantLifetime: s.cfg.TokenTTL,
	})
}

// serveAPI serves /v1/: the HTTP API, except for WebSocket upgrades, which
// DRC clients may send to any path.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		s.serveWebSocket(w, r)
		return
	}
	s.api.ServeHTTP(w, r)
}

// Authorize implements httpapi.Backend: a static authority token for the
// protocol in "Authorization: Bearer", or an authority address. A request
// that a browser sent from a page whose origin RELAY_ORIGINS does not allow
// is refused whatever its credentials, as its WebSocket would be: this
// stops a page that rebinds its DNS name to the relay's loopback address
// from borrowing the address's authority.
func (b apiBackend) Authorize(r *http.Request, proto string) httpapi.Access {
	if origin := r.Header.Get("Origin"); origin != "" && !b.s.origins.Allowed(origin) {
		return httpapi.Denied
	}
	byAddr := b.s.auths.ByAddr(b.s.addrs.Resolve(r), proto)
	hdr := r.Header.Get("Authorization")
	if hdr == "" {
		if byAddr {
			return httpapi.Allowed
		}
		return httpapi.NoCredentials
	}
	scheme, tok, _ := strings.Cut(hdr, " ")
	if strings.EqualFold(scheme, "Bearer") && b.s.auths.ByToken(strings.TrimSpace(tok), proto) || byAddr {
		return httpapi.Allowed
	}
	return httpapi.Denied
}

// MintToken implements httpapi.Backend, with the GRANT request's store and
// lifetime.
func (b apiBackend) MintToken(ctx context.Context, spec httpapi.TokenSpec) (httpapi.Token, error) {
	ttl := b.s.cfg.TokenTTL
	if spec.Lifetime > 0 && spec.Lifetime < ttl {
		ttl = spec.Lifetime
	}
	g := token.Grant{Channel: spec.Channel, Protocol: spec.Protocol, Mode: spec.ClientMode,
		Extra: protocol.CompactExtra(spec.Extra), MakeAuth: spec.MakeAuth}
	tok, exp, err := b.s.tokens.Mint(ctx, g, ttl)
	if err != nil {
		b.s.log.Error("minting a grant token failed", "err", err, "via", "http")
		return httpapi.Token{}, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: string(protocol.CodeUnavailable), Message: protocol.CodeUnavailable.Text()}
	}
	return httpapi.Token{Token: tok, Expires: exp, Lifetime: ttl}, nil
}

// Publish implements httpapi.Backend. A retained message is stored before
// it is broadcast, so a member joining meanwhile gets it at least once
// (possibly twice: replayed and live) rather than not at all.
func (b apiBackend) Publish(ctx context.Context, p httpapi.Publication) (httpapi.Published, error) {
	var out httpapi.Published
	if p.Retain > 0 {
		until, err := b.s.retained.Put(p.Channel, p.Protocol, p.Cmd, p.Fields, p.Retain)
		if errors.Is(err, retain.ErrFull) {
			return out, &httpapi.Error{Status: http.StatusTooManyRequests, Code: "retain_limit_reached",
				Message: "The relay holds as many retained messages as it may (RELAY_RETAIN_MAX_MESSAGES, RELAY_RETAIN_MAX_BYTES)."}
		}
		if err != nil {
			return out, err
		}
		out.RetainedUntil = until
	}
	ch := b.s.hub.Lookup(p.Channel, p.Protocol)
	if ch != nil {
		out.Channel = ch.ID
	}
	if p.To >= 0 {
		if ch == nil || !b.s.hub.SendTo(ch, p.To, hub.Frame{Data: appendPublished(nil, ch.ID, p.Cmd, p.Fields, false)}) {
			return httpapi.Published{}, &httpapi.Error{Status: http.StatusNotFound, Code: string(protocol.CodeInvalidTo), Message: "Invalid 'to': not a member of the channel."}
		}
		out.Delivered = 1
		return out, nil
	}
	if ch != nil {
		out.Delivered = b.s.hub.Broadcast(ch, false, hub.Frame{Data: appendPublished(nil, ch.ID, p.Cmd, p.Fields, false)})
	}
	return out, nil
}

// Presence implements httpapi.Backend.
func (b apiBackend) Presence(_ context.Context, name, proto string) (int64, []httpapi.Member) {
	ch := b.s.hub.Lookup(name, proto)
	if ch == nil {
		return 0, nil
	}
	ms := b.s.hub.Members(ch)
	out := make([]httpapi.Member, len(ms))
	for i, m := range ms {
		extra := m.Info.Extra
		if extra == nil {
			extra = []byte("false")
		}
		out[i] = httpapi.Member{ID: m.ID, Auth: m.Info.Auth, Mode: m.Info.Mode, Extra: extra}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return ch.ID, out
}

// appendPublished encodes a message from the relay itself (from 0):
// {"channel":N,"success":true,"from":0,"cmd":..,<fields>} with
// "replayed":true last when it is a retained message replayed to a joiner.
// fields are the members of a JSON object without braces.
func appendPublished(dst []byte, channel int64, cmd string, fields []byte, replayed bool) []byte {
	dst = append(dst, `{"channel":`...)
	dst = strconv.AppendInt(dst, channel, 10)
	dst = append(dst, `,"success":true,"from":0,"cmd":`...)
	dst = protocol.AppendString(dst, cmd)
	if len(fields) > 0 {
		dst = append(dst, ',')
		dst = append(dst, fields...)
	}
	if replayed {
		dst = append(dst, `,"replayed":true`...)
	}
	return append(dst, '}')
}

// replayRetained sends the joiner the channel's retained messages, right
// after its own JOINED and in its JOIN's frame type.
func (s *Server) replayRetained(r hub.Recipient, ch *hub.Channel, binary bool) {
	for _, m := range s.retained.Get(ch.Name, ch.Protocol) {
		r.Send(hub.Frame{Data: appendPublished(nil, ch.ID, m.Cmd, m.Fields, true), Binary: binary})
	}
}
