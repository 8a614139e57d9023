package client

import (
	"errors"
	"fmt"
)

// Code is a stable error code of the DRC protocol (the "errorcode" field of
// an error frame) or of the relay's HTTP API, which uses the same vocabulary.
type Code string

// Error codes the relay sends. The protocol page lists which request can
// produce which code; hooks (plugins) may add their own codes, so a Code
// outside this list is possible and should be treated as a refusal.
const (
	CodeInvalidData              Code = "invalid_data"
	CodeMissingInvalidCmd        Code = "missing_invalid_cmd"
	CodeMissingInvalidChannel    Code = "missing_invalid_channel"
	CodeMissingInvalidProtocol   Code = "missing_invalid_protocol"
	CodeMissingInvalidClientMode Code = "missing_invalid_clientmode"
	CodeMissingInvalidExtra      Code = "missing_invalid_extra"
	CodeAccessDenied             Code = "access_denied"
	CodeMaxChannelLimitReached   Code = "max_channel_limit_reached"
	CodeMissingChannel           Code = "missing_channel"
	CodeInvalidChannel           Code = "invalid_channel"
	CodeInvalidID                Code = "invalid_id"
	CodeMissingTo                Code = "missing_to"
	CodeInvalidTo                Code = "invalid_to"

	// Codes of the relay beyond DRC's: try again later (unavailable, and
	// a failed plugin under a closed failure policy), slow down
	// (rate_limited: the request was dropped), or a plugin's refusal
	// without a code of its own. Plugins may send codes of their own too.
	CodeUnavailable     Code = "unavailable"
	CodePluginError     Code = "plugin_error"
	CodePluginTimeout   Code = "plugin_timeout"
	CodePluginBadOutput Code = "plugin_bad_output"
	CodePluginDenied    Code = "plugin_denied"
	CodeInternal        Code = "internal_error"
	CodeRateLimited     Code = "rate_limited"
	// CodeTokenLimitReached: the relay's grant token store is full; GRANT
	// and POST /v1/tokens may succeed later.
	CodeTokenLimitReached Code = "token_limit_reached"

	// Codes of the relay's limits (see the README's configuration table).
	CodeExtraTooLarge Code = "extra_too_large"
	CodeChannelFull   Code = "channel_full"
	CodeTokenTooLarge Code = "token_too_large"

	// Codes used only by the HTTP API.
	CodeMissingInvalidLifetime Code = "missing_invalid_lifetime"
	CodeMissingInvalidRetain   Code = "missing_invalid_retain"
	CodeMissingInvalidFields   Code = "missing_invalid_fields"
	CodeRequestTooLarge        Code = "request_too_large"
	CodeRequestTimeout         Code = "request_timeout"
	CodeInvalidContentType     Code = "invalid_content_type"
	CodeRetainLimitReached     Code = "retain_limit_reached"
	CodeNotFound               Code = "not_found"
	CodeMethodNotAllowed       Code = "method_not_allowed"
	// CodeHostNotAllowed: a request authorised only by its address named
	// the relay by a Host that is not an IP literal, localhost or in
	// RELAY_ALLOWED_HOSTS (the relay's defence against DNS rebinding).
	CodeHostNotAllowed Code = "host_not_allowed"
)

// Error is an error reported by the relay: an error frame on the WebSocket
// or an error body from the HTTP API. Use errors.As to get it, or ErrorCode
// for just the code.
type Error struct {
	// Code is the stable machine-readable code ("errorcode" on the wire).
	Code Code
	// Message is the human-readable text ("error" on the wire).
	Message string
	// Channel is the channel number the relay reported, or 0.
	Channel int64
	// HTTPStatus is the HTTP status code for HTTP API errors, 0 otherwise.
	HTTPStatus int
}

// Error returns the message and code in one line.
func (e *Error) Error() string {
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("relay: %s (%s, http %d)", e.Message, e.Code, e.HTTPStatus)
	}
	return fmt.Sprintf("relay: %s (%s)", e.Message, e.Code)
}

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, &client.Error{Code: client.CodeAccessDenied}) works.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code
}

// ErrorCode returns the relay error code carried by err, or "" when err is
// not (and does not wrap) an *Error.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// ErrClosed is returned by calls on a Client whose connection has ended.
// Client.Err tells why it ended.
var ErrClosed = errors.New("relay client: connection closed")
