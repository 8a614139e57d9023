// Package httpapi serves the relay's HTTP API under /v1/: mint grant
// tokens, publish to a channel (optionally retained for late joiners) and
// read a channel's presence, for backends that should not hold a WebSocket
// open. openapi.json in this folder describes the API; the tests check it
// against the handlers.
//
// The package validates input, authorises callers and speaks JSON; the
// relay does the work through the Backend interface, so the same rules and
// hooks apply as on the WebSocket side.
package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/relay-project/relay/relay/protocol"
)

//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the OpenAPI 3 description of the API (a copy).
func OpenAPI() []byte { return append([]byte(nil), openapiJSON...) }

// Limits of the protocol the API enforces on input.
const (
	MaxChannelBytes  = 256
	MaxProtocolBytes = 64
	MaxCmdBytes      = 256
)

// Access is the outcome of an authority check.
type Access int

const (
	// Allowed means the caller is an authority for the protocol.
	Allowed Access = iota
	// NoCredentials means the request carried no token and does not come
	// from an authority address: 401.
	NoCredentials
	// Denied means the request's token or address is not an authority for
	// the protocol: 403.
	Denied
	// ForeignHost means the request comes from an authority address but,
	// carrying no authority token, names a Host that is not an IP literal,
	// localhost or an allowed host (RELAY_ALLOWED_HOSTS): what a page that
	// rebinds its DNS name to the relay sends. 403 host_not_allowed.
	ForeignHost
)

// TokenSpec is a validated request for a grant token.
type TokenSpec struct {
	Channel, Protocol string
	ClientMode        int
	Extra             json.RawMessage // a JSON object
	MakeAuth          bool
	// Lifetime is the requested lifetime, 0 for the relay's default.
	Lifetime time.Duration
	// Caller is the HTTP request that asked, for the on-token-create hook
	// (its address and origin); nil when a program embedding the relay
	// asks.
	Caller *http.Request
}

// Token is a minted grant token.
type Token struct {
	Token    string
	Expires  time.Time
	Lifetime time.Duration
	// ClientMode is the token's client mode: the request's, or the one
	// on-token-create chose.
	ClientMode int
}

// Publication is a validated publish request.
type Publication struct {
	Channel, Protocol, Cmd string
	// To is a member id, or negative to broadcast.
	To int64
	// Fields are the message's other fields, as the members of a JSON
	// object without braces (`"a":1,"b":2`), or empty.
	Fields []byte
	// Retain, when positive, keeps the message that long for late joiners.
	Retain time.Duration
	// Caller is the HTTP request that asked; nil when a program embedding
	// the relay asks.
	Caller *http.Request
}

// Published is what a publish did.
type Published struct {
	Channel   int64 // 0 when the channel has no members
	Delivered int
	Dropped   bool // a filter-message plugin dropped it
	// RetainedUntil is set when the message was retained.
	RetainedUntil time.Time
}

// Member is one member of a channel.
type Member struct {
	ID    int64           `json:"id"`
	Auth  bool            `json:"auth"`
	Mode  int             `json:"mode"`
	Extra json.RawMessage `json:"extra"` // an object or false
}

// Backend is the relay seen from the API.
type Backend interface {
	// Authorize decides whether r comes from an authority for protocol,
	// exactly as the WebSocket side decides for GRANT.
	Authorize(r *http.Request, protocol string) Access
	// MintToken mints a grant token, running the on-token-create hook.
	MintToken(ctx context.Context, spec TokenSpec) (Token, error)
	// Publish delivers a message from 0 through the filter-message hook,
	// and retains it when asked.
	Publish(ctx context.Context, p Publication) (Published, error)
	// Presence returns the channel's number (0 when it has no members on
	// the answering instance) and its members sorted by id; an error
	// means the shared state of a cluster could not be read.
	Presence(ctx context.Context, channel, protocol string) (int64, []Member, error)
}

// Error is a refusal with a stable code: bad input found by the Handler,
// or a Backend's refusal (a hook's, a full retain store, an unknown
// member).
type Error struct {
	Status  int    // HTTP status; 0 means 403
	Code    string // errorcode
	Message string
}

// Error returns the message and code.
func (e *Error) Error() string { return e.Message + " (" + e.Code + ")" }

// Config holds the API's limits.
type Config struct {
	// MaxBodyBytes caps a request body (RELAY_HTTP_MAX_BODY_BYTES).
	// Default: 65536.
	MaxBodyBytes int64
	// RetainMax caps a publish's retain time (RELAY_RETAIN_MAX).
	// Default: 1 h.
	RetainMax time.Duration
	// GrantLifetime is the relay's grant token lifetime, the longest a
	// minted token may live. Default: 30 s.
	GrantLifetime time.Duration
}

// Handler serves the API. Mount it at /v1/.
type Handler struct {
	b      Backend
	cfg    Config
	routes map[string]map[string]http.HandlerFunc // path -> method -> handler
	fields map[string][]string                    // path -> the JSON body's fields
}

// New returns a Handler for b.
func New(b Backend, cfg Config) *Handler {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 65536
	}
	if cfg.RetainMax <= 0 {
		cfg.RetainMax = time.Hour
	}
	if cfg.GrantLifetime <= 0 {
		cfg.GrantLifetime = 30 * time.Second
	}
	h := &Handler{b: b, cfg: cfg, fields: map[string][]string{
		"/v1/tokens":  {"channel", "protocol", "clientmode", "extra", "makeauth", "lifetime"},
		"/v1/publish": {"channel", "protocol", "cmd", "to", "fields", "retain"},
	}}
	h.routes = map[string]map[string]http.HandlerFunc{
		"/v1/tokens":       {http.MethodPost: h.tokens},
		"/v1/publish":      {http.MethodPost: h.publish},
		"/v1/presence":     {http.MethodGet: h.presence},
		"/v1/openapi.json": {http.MethodGet: h.openapi},
	}
	return h
}

// Routes returns the API's paths and methods, sorted ("POST /v1/tokens").
func (h *Handler) Routes() []string {
	var out []string
	for p, ms := range h.routes {
		for m := range ms {
			out = append(out, m+" "+p)
		}
	}
	sort.Strings(out)
	return out
}

// BodyFields returns the fields the JSON body of a POST to path may have.
func (h *Handler) BodyFields(path string) []string {
	return append([]string(nil), h.fields[path]...)
}

// Route names r's API route for metrics: its path when the API serves it,
// "other" for any other path (so the label has a fixed set of values).
func (h *Handler) Route(r *http.Request) string {
	p := strings.TrimSuffix(r.URL.Path, "/")
	if _, ok := h.routes[p]; ok {
		return p
	}
	return "other"
}

// ServeHTTP routes a request under /v1/.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ms, ok := h.routes[strings.TrimSuffix(r.URL.Path, "/")]
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "No such API path.")
		return
	}
	fn, ok := ms[r.Method]
	if !ok && r.Method == http.MethodHead {
		fn, ok = ms[http.MethodGet]
	}
	if !ok {
		var allow []string
		for m := range ms {
			allow = append(allow, m)
		}
		sort.Strings(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Use "+strings.Join(allow, " or ")+" for this path.")
		return
	}
	fn(w, r)
}

func bad(code, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"channel":0,"success":false,"error":"Internal error.","errorcode":"internal_error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// errorBody has the DRC error frame's keys in its order.
type errorBody struct {
	Channel   int    `json:"channel"`
	Success   bool   `json:"success"`
	Error     string `json:"error"`
	ErrorCode string `json:"errorcode"`
}

// WriteError writes the API's error body with status, for refusals the
// relay makes before a request reaches the Handler.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	writeError(w, status, code, msg)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="relay"`)
	}
	writeJSON(w, status, errorBody{Error: msg, ErrorCode: code})
}

// fail writes err: an *Error, or anything else as a 500.
func fail(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		writeError(w, http.StatusInternalServerError, "internal_error", "Internal error.")
		return
	}
	st := e.Status
	if st == 0 {
		st = http.StatusForbidden
	}
	writeError(w, st, e.Code, e.Message)
}

func (h *Handler) authorize(r *http.Request, protocol string) error {
	switch h.b.Authorize(r, protocol) {
	case Allowed:
		return nil
	case NoCredentials:
		return &Error{Status: http.StatusUnauthorized, Code: "access_denied", Message: "Access denied: send an authority token as 'Authorization: Bearer <token>' or call from an authority address."}
	case ForeignHost:
		return &Error{Status: http.StatusForbidden, Code: "host_not_allowed", Message: "Access denied: a request authorised by its address must name the relay by IP address, localhost or a host in RELAY_ALLOWED_HOSTS; or send an authority token."}
	default:
		return &Error{Status: http.StatusForbidden, Code: "access_denied", Message: "Access denied: not an authority for this protocol."}
	}
}

// readObject reads a JSON object body into its members (the last of
// duplicate keys wins, as in the protocol).
func (h *Handler) readObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return nil, &Error{Status: http.StatusUnsupportedMediaType, Code: "invalid_content_type", Message: "The body must be JSON, sent with 'Content-Type: application/json'."}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: "request_too_large", Message: fmt.Sprintf("The body exceeds %d bytes.", h.cfg.MaxBodyBytes)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The server's read timeout (RELAY_HTTP_READ_TIMEOUT in
			// cmd/relay) ended a body that arrived too slowly.
			return nil, &Error{Status: http.StatusRequestTimeout, Code: "request_timeout", Message: "The body did not arrive in time."}
		}
		return nil, bad("invalid_data", "Could not read the body.")
	}
	return parseObject(data)
}

// parseObject decodes a JSON object into its members (the last of
// duplicate keys wins, as in the protocol).
func parseObject(data []byte) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if !utf8.Valid(data) || json.Unmarshal(data, &obj) != nil || obj == nil {
		return nil, bad("invalid_data", "The body must be a JSON object.")
	}
	return obj, nil
}

// onlyKeys refuses members of obj outside allowed.
func onlyKeys(obj map[string]json.RawMessage, allowed ...string) error {
	var unknown []string
	for k := range obj {
		found := false
		for _, a := range allowed {
			if k == a {
				found = true
				break
			}
		}
		if !found {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return bad("invalid_data", "Unknown field %q; allowed: %s.", unknown[0], strings.Join(allowed, ", "))
	}
	return nil
}

// str decodes a required string of 1..max bytes that decodes exactly (no
// lone surrogate escapes, protocol.ExactString), as the WebSocket side
// requires of names.
func str(obj map[string]json.RawMessage, name string, max int, code string) (string, error) {
	raw, ok := obj[name]
	s, exact := protocol.ExactString(bytes.TrimSpace(raw))
	if !ok || !exact || s == "" || len(s) > max || !utf8.ValidString(s) {
		return "", bad(code, "'%s' must be a string of 1 to %d bytes.", name, max)
	}
	return s, nil
}

// integer decodes an optional JSON integer.
func integer(obj map[string]json.RawMessage, name string) (v int64, present bool, ok bool) {
	raw, present := obj[name]
	if !present || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return 0, false, true
	}
	var n json.Number // it would also take a quoted number: refuse those first
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] == '"' {
		return 0, true, false
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, true, false
	}
	i, err := n.Int64()
	if err != nil {
		f, ferr := n.Float64() // 3.0 is an integer too
		if ferr != nil || f > 1<<53 || f < -(1<<53) || f != float64(int64(f)) {
			return 0, true, false
		}
		i = int64(f)
	}
	return i, true, true
}

// object decodes an optional JSON object ([] counts as an empty one, as
// PHP writes it) and returns it as an object.
func object(obj map[string]json.RawMessage, name string) (json.RawMessage, bool) {
	raw, ok := obj[name]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return json.RawMessage(`{}`), true
	}
	t := bytes.TrimSpace(raw)
	if bytes.Equal(t, []byte("[]")) {
		return json.RawMessage(`{}`), true
	}
	if len(t) == 0 || t[0] != '{' {
		return nil, false
	}
	return t, true
}

type tokenResponse struct {
	Success     bool   `json:"success"`
	Token       string `json:"token"`
	ChannelName string `json:"channelname"`
	Protocol    string `json:"protocol"`
	ClientMode  int    `json:"clientmode"`
	MakeAuth    bool   `json:"makeauth"`
	Expires     string `json:"expires"`
	Lifetime    int64  `json:"lifetime"`
}

func (h *Handler) tokens(w http.ResponseWriter, r *http.Request) {
	spec, err := h.tokenSpec(w, r)
	if err != nil {
		fail(w, err)
		return
	}
	tok, err := h.b.MintToken(r.Context(), spec)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, tokenResponse{
		Success: true, Token: tok.Token, ChannelName: spec.Channel, Protocol: spec.Protocol,
		ClientMode: tok.ClientMode, MakeAuth: spec.MakeAuth,
		Expires: tok.Expires.UTC().Format(time.RFC3339Nano), Lifetime: int64((tok.Lifetime + time.Second - 1) / time.Second), // a plugin may choose part of a second
	})
}

func (h *Handler) tokenSpec(w http.ResponseWriter, r *http.Request) (TokenSpec, error) {
	obj, err := h.readObject(w, r)
	if err != nil {
		return TokenSpec{}, err
	}
	s, err := h.parseTokenSpec(obj)
	if err != nil {
		return s, err
	}
	s.Caller = r
	return s, h.authorize(r, s.Protocol)
}

// ParseTokenSpec validates a POST /v1/tokens body as the handler does,
// without the authority check (for callers inside the relay).
func (h *Handler) ParseTokenSpec(body []byte) (TokenSpec, error) {
	obj, err := parseObject(body)
	if err != nil {
		return TokenSpec{}, err
	}
	return h.parseTokenSpec(obj)
}

func (h *Handler) parseTokenSpec(obj map[string]json.RawMessage) (TokenSpec, error) {
	var s TokenSpec
	var err error
	if err := onlyKeys(obj, h.fields["/v1/tokens"]...); err != nil {
		return s, err
	}
	if s.Channel, err = str(obj, "channel", MaxChannelBytes, "missing_invalid_channel"); err != nil {
		return s, err
	}
	if s.Protocol, err = str(obj, "protocol", MaxProtocolBytes, "missing_invalid_protocol"); err != nil {
		return s, err
	}
	mode, _, ok := integer(obj, "clientmode")
	if !ok || mode < 0 || mode > 2 {
		return s, bad("missing_invalid_clientmode", "'clientmode' must be 0, 1 or 2.")
	}
	s.ClientMode = int(mode)
	if s.Extra, ok = object(obj, "extra"); !ok {
		return s, bad("missing_invalid_extra", "'extra' must be a JSON object.")
	}
	if raw, present := obj["makeauth"]; present {
		if err := json.Unmarshal(raw, &s.MakeAuth); err != nil {
			return s, bad("invalid_data", "'makeauth' must be true or false.")
		}
	}
	maxLife := int64(h.cfg.GrantLifetime / time.Second)
	life, present, ok := integer(obj, "lifetime")
	if !ok || (present && (life < 1 || life > maxLife)) {
		return s, bad("missing_invalid_lifetime", "'lifetime' must be a whole number of seconds from 1 to %d.", maxLife)
	}
	s.Lifetime = time.Duration(life) * time.Second
	return s, nil
}

type publishResponse struct {
	Success       bool   `json:"success"`
	Channel       int64  `json:"channel"`
	Delivered     int    `json:"delivered"`
	Dropped       bool   `json:"dropped"`
	Retained      bool   `json:"retained"`
	RetainedUntil string `json:"retained_until,omitempty"`
}

// reservedCmds are the protocol's own commands; a message cannot use them.
var reservedCmds = map[string]bool{"GRANT": true, "GRANTED": true, "JOIN": true, "JOINED": true, "SET_EXTRA": true, "LEAVE": true, "LEFT": true}

// reservedFields are set by the relay on a delivered message.
var reservedFields = map[string]bool{"channel": true, "success": true, "from": true, "cmd": true, "to": true, "replayed": true}

func (h *Handler) publish(w http.ResponseWriter, r *http.Request) {
	p, err := h.publication(w, r)
	if err != nil {
		fail(w, err)
		return
	}
	res, err := h.b.Publish(r.Context(), p)
	if err != nil {
		fail(w, err)
		return
	}
	out := publishResponse{Success: true, Channel: res.Channel, Delivered: res.Delivered, Dropped: res.Dropped}
	if !res.RetainedUntil.IsZero() {
		out.Retained = true
		out.RetainedUntil = res.RetainedUntil.UTC().Format(time.RFC3339Nano)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) publication(w http.ResponseWriter, r *http.Request) (Publication, error) {
	obj, err := h.readObject(w, r)
	if err != nil {
		return Publication{}, err
	}
	p, err := h.parsePublication(obj)
	if err != nil {
		return p, err
	}
	p.Caller = r
	return p, h.authorize(r, p.Protocol)
}

// ParsePublication validates a POST /v1/publish body as the handler does,
// without the authority check (for callers inside the relay).
func (h *Handler) ParsePublication(body []byte) (Publication, error) {
	obj, err := parseObject(body)
	if err != nil {
		return Publication{}, err
	}
	return h.parsePublication(obj)
}

func (h *Handler) parsePublication(obj map[string]json.RawMessage) (Publication, error) {
	var p Publication
	var err error
	if err := onlyKeys(obj, h.fields["/v1/publish"]...); err != nil {
		return p, err
	}
	if p.Channel, err = str(obj, "channel", MaxChannelBytes, "missing_invalid_channel"); err != nil {
		return p, err
	}
	if p.Protocol, err = str(obj, "protocol", MaxProtocolBytes, "missing_invalid_protocol"); err != nil {
		return p, err
	}
	if p.Cmd, err = str(obj, "cmd", MaxCmdBytes, "missing_invalid_cmd"); err != nil {
		return p, err
	}
	if reservedCmds[p.Cmd] {
		return p, bad("missing_invalid_cmd", "'cmd' %s is one of the protocol's own commands.", p.Cmd)
	}
	to, present, ok := integer(obj, "to")
	if !ok {
		return p, bad("invalid_to", "'to' must be a member id (an integer), or omitted to broadcast.")
	}
	p.To = -1
	if present {
		p.To = to
	}
	if p.Fields, err = orderedFields(obj["fields"]); err != nil {
		return p, err
	}
	maxRetain := int64(h.cfg.RetainMax / time.Second)
	ret, _, ok := integer(obj, "retain")
	if !ok || ret < 0 || ret > maxRetain {
		return p, bad("missing_invalid_retain", "'retain' must be a whole number of seconds from 0 to %d.", maxRetain)
	}
	if ret > 0 && p.To >= 0 {
		return p, bad("missing_invalid_retain", "Only broadcasts can be retained; omit 'to' or 'retain'.")
	}
	p.Retain = time.Duration(ret) * time.Second
	return p, nil
}

// orderedFields checks that raw is a JSON object (or absent/null) with no
// reserved names and returns its members in order, without braces; the
// last of duplicate keys wins, in the place of the first.
func orderedFields(raw json.RawMessage) ([]byte, error) {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) || bytes.Equal(t, []byte("[]")) {
		return nil, nil
	}
	errFields := bad("missing_invalid_fields", "'fields' must be a JSON object.")
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errFields
	}
	var keys []string
	vals := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errFields
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, errFields
		}
		if reservedFields[k] {
			return nil, bad("missing_invalid_fields", "'fields' may not set %q; the relay sets it.", k)
		}
		if _, dup := vals[k]; !dup {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	var out []byte
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		kb, _ := json.Marshal(k)
		out = append(out, kb...)
		out = append(out, ':')
		var buf bytes.Buffer
		if err := json.Compact(&buf, vals[k]); err != nil {
			return nil, errFields
		}
		out = append(out, buf.Bytes()...)
	}
	return out, nil
}

type presenceResponse struct {
	Success     bool     `json:"success"`
	Channel     int64    `json:"channel"`
	ChannelName string   `json:"channelname"`
	Protocol    string   `json:"protocol"`
	Members     []Member `json:"members"`
}

func (h *Handler) presence(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	obj := map[string]json.RawMessage{}
	for _, k := range []string{"channel", "protocol"} {
		if vs, ok := q[k]; ok && len(vs) > 0 && utf8.ValidString(vs[len(vs)-1]) {
			b, _ := json.Marshal(vs[len(vs)-1])
			obj[k] = b
		}
	}
	name, err := str(obj, "channel", MaxChannelBytes, "missing_invalid_channel")
	if err != nil {
		fail(w, err)
		return
	}
	proto, err := str(obj, "protocol", MaxProtocolBytes, "missing_invalid_protocol")
	if err != nil {
		fail(w, err)
		return
	}
	if err := h.authorize(r, proto); err != nil {
		fail(w, err)
		return
	}
	n, members, err := h.b.Presence(r.Context(), name, proto)
	if err != nil {
		fail(w, err)
		return
	}
	if members == nil {
		members = []Member{}
	}
	writeJSON(w, http.StatusOK, presenceResponse{Success: true, Channel: n, ChannelName: name, Protocol: proto, Members: members})
}

func (h *Handler) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openapiJSON)
}
