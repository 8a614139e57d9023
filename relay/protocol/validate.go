package protocol

import (
	"bytes"
	"encoding/json"
)

// The field readers below apply the protocol's validation rules to one field
// of a decoded request. Each returns ok=false where the protocol answers with
// an error code; which code depends on the request type and is chosen by the
// caller, in the protocol's order.

// ChannelName returns `channel` as a channel name: a string of 1 to 256 bytes.
func ChannelName(r *Request) (string, bool) {
	return boundedString(r, "channel", MaxChannelNameBytes)
}

// ProtocolName returns `protocol`: a string of 1 to 64 bytes.
func ProtocolName(r *Request) (string, bool) {
	return boundedString(r, "protocol", MaxProtocolBytes)
}

func boundedString(r *Request, key string, max int) (string, bool) {
	raw, ok := r.Get(key)
	if !ok {
		return "", false
	}
	s, ok := String(raw)
	if !ok || len(s) == 0 || len(s) > max {
		return "", false
	}
	return s, true
}

// ClientMode returns `clientmode` as 0, 1 or 2: numeric (a number or numeric
// string) and within 0..2, then truncated to an integer. Unlike the reference
// server, the mode is always normalised to an integer.
func ClientMode(r *Request) (int, bool) {
	raw, ok := r.Get("clientmode")
	if !ok {
		return 0, false
	}
	f, ok := Number(raw)
	if !ok || f < 0 || f > 2 {
		return 0, false
	}
	return int(f), true
}

// Extra returns `extra` as compact JSON owned by the caller: an object or an
// array. An empty array becomes {} (PHP cannot tell them apart, and clients
// expect an object).
func Extra(r *Request) ([]byte, bool) {
	raw, ok := r.Get("extra")
	if !ok || !IsContainer(raw) {
		return nil, false
	}
	return CompactExtra(raw), true
}

// CompactExtra returns a compact copy of a valid JSON object or array, with
// an empty array turned into {}.
func CompactExtra(raw []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return []byte("{}")
	}
	if buf.Len() == 2 && buf.Bytes()[0] == '[' {
		return []byte("{}")
	}
	return buf.Bytes()
}

// ChannelNumber returns `channel` as a channel number. code is
// CodeMissingChannel when absent and CodeInvalidChannel when not numeric or
// not positive.
func ChannelNumber(r *Request) (int64, Code) {
	raw, ok := r.Get("channel")
	if !ok {
		return 0, CodeMissingChannel
	}
	n, ok := Int(raw)
	if !ok || n <= 0 {
		return 0, CodeInvalidChannel
	}
	return n, ""
}

// Token returns `token` when it is a string, and "" otherwise.
func Token(r *Request) string {
	raw, ok := r.Get("token")
	if !ok {
		return ""
	}
	s, _ := String(raw)
	return s
}

// Flag reports whether field key is exactly the JSON literal lit ("true" or
// "false"). `makeauth` counts only as the literal true and `ipauth` disables
// IP authority only as the literal false.
func Flag(r *Request, key, lit string) bool {
	raw, ok := r.Get(key)
	return ok && string(raw) == lit
}
