package protocol

import (
	"bytes"
	"encoding/json"
)

// The field readers below apply the protocol's validation rules to one field
// of a decoded request. Each returns ok=false where the protocol answers with
// an error code; which code depends on the request type and is chosen by the
// caller, in the protocol's order.

// ChannelName returns `channel` as a channel name: a string of 1 to 256
// bytes that decodes exactly (ExactString).
func ChannelName(r *Request) (string, bool) {
	return boundedString(r, "channel", MaxChannelNameBytes)
}

// ProtocolName returns `protocol`: a string of 1 to 64 bytes that decodes
// exactly (ExactString).
func ProtocolName(r *Request) (string, bool) {
	return boundedString(r, "protocol", MaxProtocolBytes)
}

func boundedString(r *Request, key string, max int) (string, bool) {
	raw, ok := r.Get(key)
	if !ok {
		return "", false
	}
	s, ok := ExactString(raw)
	if !ok || len(s) == 0 || len(s) > max {
		return "", false
	}
	return s, true
}

// ExactString is String for names: ok is also false when raw escapes a
// lone UTF-16 surrogate ("\ud800", or a low surrogate without its high
// one). Such an escape decodes to no character, and encoding/json quietly
// turns it into U+FFFD, so without this check "\ud800", "\udfff" and
// "\ufffd" would all name one channel.
func ExactString(raw []byte) (string, bool) {
	s, ok := String(raw)
	if !ok || !wholeSurrogates(raw) {
		return "", false
	}
	return s, true
}

// wholeSurrogates reports whether every \u escape of the valid JSON string
// raw that names a surrogate is a high one followed at once by an escaped
// low one.
func wholeSurrogates(raw []byte) bool {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if raw[i] != 'u' {
			continue
		}
		u, ok := hex4(raw, i+1)
		if !ok {
			return false
		}
		i += 4
		switch {
		case u >= 0xDC00 && u <= 0xDFFF: // a low surrogate alone
			return false
		case u >= 0xD800 && u <= 0xDBFF: // a high one: the next escape must be its low one
			if i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return false
			}
			lo, ok := hex4(raw, i+3)
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		}
	}
	return true
}

// hex4 reads four hex digits at raw[i:].
func hex4(raw []byte, i int) (rune, bool) {
	if i+4 > len(raw) {
		return 0, false
	}
	var u rune
	for _, c := range raw[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			u = u<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			u = u<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			u = u<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return u, true
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
	// Exactly len(raw): a member keeps its extra for as long as it is
	// joined, and Grow's 64-byte minimum was most of a small one's cost.
	buf := bytes.NewBuffer(make([]byte, 0, len(raw)))
	if err := json.Compact(buf, raw); err != nil {
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
