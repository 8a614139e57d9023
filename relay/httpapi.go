package relay

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/relay-project/relay/relay/internal/httpapi"
	"github.com/relay-project/relay/relay/internal/hub"
	"github.com/relay-project/relay/relay/internal/metrics"
	"github.com/relay-project/relay/relay/internal/plugin"
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
	if s.retained == nil { // else the cluster's (cluster.go)
		mem := retain.New(&retain.Options{Now: s.cfg.Now, MaxMessages: s.cfg.RetainMaxMessages, MaxBytes: int64(s.cfg.RetainMaxBytes)})
		s.retained = mem
		s.retainedNow = func(ch *hub.Channel) []retain.Message { return mem.Now(ch.Name, ch.Protocol) }
	}
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
	rec := &statusRecorder{ResponseWriter: w}
	s.api.ServeHTTP(rec, r)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	s.metrics.HTTPRequests.WithLabelValues(s.api.Route(r), strconv.Itoa(rec.code)).Inc()
}

// statusRecorder remembers the status an API handler answered with, for
// relay_http_requests_total.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (w *statusRecorder) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusRecorder) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Authorize implements httpapi.Backend: a static authority token for the
// protocol in "Authorization: Bearer", or an authority address. A request
// that a browser sent from a page whose origin RELAY_ORIGINS does not allow
// is refused whatever its credentials, as its WebSocket would be. A request
// authorised by its address alone must also carry a Host that cannot be
// rebound (auth.Hosts): a page that rebinds its DNS name to the relay's
// loopback address sends no Origin on a same-origin GET, but its own name
// as Host, so neither check alone stops it borrowing the address's
// authority.
func (b apiBackend) Authorize(r *http.Request, proto string) httpapi.Access {
	if origin := r.Header.Get("Origin"); origin != "" && !b.s.origins.Allowed(origin) {
		return httpapi.Denied
	}
	// Resolved (and an unusable forwarded value counted) whatever the
	// credentials, so the metric sees every request a proxy mangles.
	client := b.s.clientOf(r)
	if hdr := r.Header.Get("Authorization"); hdr != "" {
		scheme, tok, _ := strings.Cut(hdr, " ")
		if strings.EqualFold(scheme, "Bearer") && b.s.auths.ByToken(strings.TrimSpace(tok), proto) {
			return httpapi.Allowed
		}
	}
	if !b.s.auths.ByAddr(client, proto) {
		if r.Header.Get("Authorization") == "" {
			return httpapi.NoCredentials
		}
		return httpapi.Denied
	}
	if !b.s.hostAllowsAddrAuthority(r) {
		return httpapi.ForeignHost
	}
	return httpapi.Allowed
}

// MintToken implements httpapi.Backend, with the GRANT request's store,
// lifetime and on-token-create hook. The hook sees client id 0 and the
// HTTP caller's address and origin.
func (b apiBackend) MintToken(ctx context.Context, spec httpapi.TokenSpec) (httpapi.Token, error) {
	ttl := b.s.cfg.TokenTTL
	if spec.Lifetime > 0 && spec.Lifetime < ttl {
		ttl = spec.Lifetime
	}
	mode, extra := spec.ClientMode, protocol.CompactExtra(spec.Extra)
	if len(extra) > b.s.cfg.MaxExtraBytes {
		// Counted with the GRANTs it stands for.
		b.s.metrics.Errors.WithLabelValues(metrics.KindGrant, string(protocol.CodeExtraTooLarge)).Inc()
		return httpapi.Token{}, &httpapi.Error{Status: http.StatusBadRequest, Code: string(protocol.CodeExtraTooLarge), Message: protocol.CodeExtraTooLarge.Text()}
	}
	if b.s.plugins.Enabled(plugin.OnTokenCreate) {
		addr, origin := callerOf(b.s, spec.Caller)
		out := b.s.plugins.OnTokenCreate(ctx, &plugin.TokenRequest{
			Addr: addr, Origin: origin, Channel: spec.Channel, Protocol: spec.Protocol,
			Builtin: plugin.TokenOutcome{Allowed: true, ClientMode: mode, Extra: extra, MakeAuth: spec.MakeAuth, Lifetime: ttl},
		})
		if !out.Allowed {
			return httpapi.Token{}, pluginRefusal(out.ErrorCode, out.Error)
		}
		mode, ttl, extra = out.ClientMode, out.Lifetime, tokenExtra(out)
	}
	g := token.Grant{Channel: spec.Channel, Protocol: spec.Protocol, Mode: mode, Extra: extra, MakeAuth: spec.MakeAuth}
	tok, exp, err := b.s.tokens.Mint(ctx, g, ttl)
	if errors.Is(err, token.ErrFull) {
		b.s.metrics.Refused.WithLabelValues(metrics.RefusedTokenStoreFull).Inc()
		return httpapi.Token{}, &httpapi.Error{Status: http.StatusTooManyRequests, Code: string(protocol.CodeTokenLimitReached), Message: protocol.CodeTokenLimitReached.Text()}
	}
	if err != nil {
		b.s.log.Error("minting a grant token failed", "err", err, "via", "http")
		return httpapi.Token{}, &httpapi.Error{Status: http.StatusServiceUnavailable, Code: string(protocol.CodeUnavailable), Message: protocol.CodeUnavailable.Text()}
	}
	return httpapi.Token{Token: tok, Expires: exp, Lifetime: ttl, ClientMode: mode}, nil
}

// callerOf returns the address and origin a hook sees for an HTTP caller
// (empty for a program embedding the relay).
func callerOf(s *Server, r *http.Request) (addr, origin string) {
	if r == nil {
		return "", ""
	}
	return s.addrs.Resolve(r).String(), r.Header.Get("Origin") // Authorize counted it already
}

// pluginRefusal is a hook's refusal as an HTTP API error: 503 when the
// plugin failed (its hook's failure policy is closed), so the caller may
// retry; 403 when a plugin said no.
func pluginRefusal(code, msg string) *httpapi.Error {
	st := http.StatusForbidden
	switch protocol.Code(code) {
	case protocol.CodePluginError, protocol.CodePluginTimeout, protocol.CodePluginBadOutput:
		st = http.StatusServiceUnavailable
	}
	if msg == "" {
		msg = protocol.Code(code).Text()
	}
	return &httpapi.Error{Status: st, Code: code, Message: msg}
}

// filterPublished runs filter-message on a publication as a message from
// 0, an authority with send-to-any. It returns the fields to deliver, or
// false when a plugin dropped the message silently.
func (b apiBackend) filterPublished(ctx context.Context, p httpapi.Publication) ([]byte, bool, error) {
	var chID int64
	if ch := b.s.hub.Lookup(p.Channel, p.Protocol); ch != nil {
		chID = ch.ID
	}
	body := make([]byte, 0, len(p.Fields)+2)
	body = append(append(append(body, '{'), p.Fields...), '}')
	addr, _ := callerOf(b.s, p.Caller) // the plugin pool's fairness key
	out := b.s.plugins.FilterMessage(ctx, &plugin.MessageRequest{
		ChannelID: chID, Channel: p.Channel, Protocol: p.Protocol, Addr: addr,
		Authority: true, Mode: protocol.ModeSendToAny, To: p.To, Cmd: p.Cmd, Body: body,
	})
	switch out.Action {
	case plugin.Drop:
		return nil, false, nil
	case plugin.Reject:
		return nil, false, pluginRefusal(out.ErrorCode, out.Error)
	}
	if !out.Rewritten {
		return p.Fields, true, nil
	}
	// Keep the rewrite's members except those the relay sets on a
	// delivered message, "replayed" included: only a replay may carry it.
	var req protocol.Request
	if err := decodeRewrite(out.Body, p.Cmd, &req); err != nil {
		b.s.log.Error("plugin rewrite does not decode", "err", err, "via", "http")
		return nil, false, pluginRefusal(string(protocol.CodePluginBadOutput), "")
	}
	req.Fields = slices.DeleteFunc(req.Fields, func(f protocol.Field) bool { return f.Key == "replayed" })
	return protocol.AppendFields(nil, &req), true, nil
}

// Publish implements httpapi.Backend. A message goes through
// filter-message first, so what is retained is what was delivered; a
// message a plugin drops is neither delivered nor retained, and says so
// (dropped, delivered 0).
// A retained message is stored before
// it is broadcast, so a member joining meanwhile gets it at least once
// (possibly twice: replayed and live) rather than not at all.
func (b apiBackend) Publish(ctx context.Context, p httpapi.Publication) (httpapi.Published, error) {
	var out httpapi.Published
	if b.s.plugins.Enabled(plugin.FilterMessage) {
		fields, deliver, err := b.filterPublished(ctx, p)
		if err != nil {
			return out, err
		}
		if !deliver { // dropped: reached no one, and not retained
			out.Dropped = true
			if ch := b.s.hub.Lookup(p.Channel, p.Protocol); ch != nil {
				out.Channel = ch.ID
			}
			return out, nil
		}
		p.Fields = fields
	}
	if p.Retain > 0 {
		until, err := b.s.retained.Put(ctx, p.Channel, p.Protocol, p.Cmd, p.Fields, p.Retain)
		if errors.Is(err, retain.ErrFull) {
			return out, &httpapi.Error{Status: http.StatusTooManyRequests, Code: "retain_limit_reached",
				Message: "The relay holds as many retained messages as it may (RELAY_RETAIN_MAX_MESSAGES, RELAY_RETAIN_MAX_BYTES)."}
		}
		if err != nil {
			return out, unavailableError(err)
		}
		out.RetainedUntil = until
	}
	ch := b.s.hub.Lookup(p.Channel, p.Protocol)
	if ch != nil {
		out.Channel = ch.ID
	}
	if b.s.broker != nil {
		return b.s.publishCluster(ctx, p, ch, out)
	}
	if p.To >= 0 {
		if ch == nil || !b.s.hub.SendTo(ch, p.To, published(ch.ID, p.Cmd, p.Fields)) {
			return httpapi.Published{}, &httpapi.Error{Status: http.StatusNotFound, Code: string(protocol.CodeInvalidTo), Message: "Invalid 'to': not a member of the channel."}
		}
		out.Delivered = 1
		return out, nil
	}
	if ch != nil {
		out.Delivered = b.s.hub.Broadcast(ch, false, published(ch.ID, p.Cmd, p.Fields))
	}
	return out, nil
}

// Presence implements httpapi.Backend. In a cluster, a channel with no
// members here is read from the other instances' records.
func (b apiBackend) Presence(ctx context.Context, name, proto string) (int64, []httpapi.Member, error) {
	ch := b.s.hub.Lookup(name, proto)
	var ms []protocol.Member
	var n int64
	switch {
	case ch != nil:
		ms, n = b.s.hub.Members(ch), ch.ID
	case b.s.broker != nil:
		var err error
		if ms, err = b.s.remoteMembers(ctx, name, proto); err != nil {
			return 0, nil, unavailableError(err)
		}
	default:
		return 0, nil, nil
	}
	out := make([]httpapi.Member, len(ms))
	for i, m := range ms {
		extra := m.Info.Extra
		if extra == nil {
			extra = []byte("false")
		}
		out[i] = httpapi.Member{ID: m.ID, Auth: m.Info.Auth, Mode: m.Info.Mode, Extra: extra}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return n, out, nil
}

// appendPublished encodes a message from the relay itself (from 0):
// {"channel":N,"success":true,"from":0,"cmd":..,<fields>} with
// "replayed":true last when it is a retained message replayed to a joiner.
// fields are the members of a JSON object without braces.
func appendPublished(dst []byte, channel int64, cmd string, fields []byte, replayed bool) []byte {
	dst = protocol.AppendMessageHead(dst, channel, 0)
	dst = append(dst, `"cmd":`...)
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

// published is a message from the relay itself for delivery.
func published(channel int64, cmd string, fields []byte) hub.Message {
	data := appendPublished(nil, channel, cmd, fields, false)
	return hub.Message{Frame: hub.Frame{Data: data}, Tail: len(protocol.AppendMessageHead(nil, channel, 0))}
}

// replay returns the Replay of a JOIN: the channel's retained messages,
// in the JOIN's frame type. It reads the in-process store, which never
// blocks, so the hub may call it under the channel's lock.
func (s *Server) replay(binary bool) hub.Replay {
	return func(ch *hub.Channel) []hub.Frame {
		msgs := s.retainedNow(ch)
		if len(msgs) == 0 {
			return nil
		}
		out := make([]hub.Frame, len(msgs))
		for i, m := range msgs {
			out[i] = hub.Frame{Data: appendPublished(nil, ch.ID, m.Cmd, m.Fields, true), Binary: binary}
		}
		return out
	}
}
