package protocol

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// ErrInvalidData is returned by Decode when the payload is not one JSON
// object.
var ErrInvalidData = errors.New("protocol: payload is not a JSON object")

// ErrMissingInvalidCmd is returned by Decode when `cmd` is missing, is not a
// string, or names a server-only command.
var ErrMissingInvalidCmd = errors.New("protocol: missing or invalid cmd")

// Field is one top-level member of a request object.
type Field struct {
	// Key is the member name, unescaped.
	Key string
	// RawKey is the member name as it appeared on the wire, quotes included.
	RawKey []byte
	// Value is the member's raw JSON value.
	Value []byte
}

// Request is one decoded client request: its `cmd` and its top-level fields
// in the order they first appeared, each holding the last value given for
// its key (as PHP's decoder does). Field values point into the payload passed
// to Decode and are valid only as long as it is.
//
// A Request may be reused across calls to Decode to avoid allocations.
type Request struct {
	Cmd    string
	Fields []Field

	// index maps a key to its position in Fields once a request has
	// indexFrom fields, so a message with thousands of distinct keys
	// decodes in linear time; indexed says whether it is current.
	index   map[string]int
	indexed bool
}

// indexFrom is the field count from which set and Get look keys up in a map
// instead of scanning Fields: below it a scan is faster than hashing.
const indexFrom = 16

// Decode parses payload into req. It returns ErrInvalidData when payload is
// not a single valid JSON object in UTF-8, and ErrMissingInvalidCmd when its
// `cmd` is missing, not a string, or one of GRANTED, JOINED or LEFT.
func Decode(payload []byte, req *Request) error {
	req.Cmd = ""
	req.Fields = req.Fields[:0]
	req.indexed = false
	if !utf8.Valid(payload) || !json.Valid(payload) {
		return ErrInvalidData
	}
	i := skipSpace(payload, 0)
	if payload[i] != '{' {
		return ErrInvalidData
	}
	i = skipSpace(payload, i+1)
	for payload[i] != '}' {
		keyStart := i
		keyEnd := skipString(payload, i)
		rawKey := payload[keyStart:keyEnd]
		i = skipSpace(payload, keyEnd)
		i = skipSpace(payload, i+1) // ':'
		valStart := i
		i = skipValue(payload, i)
		req.set(rawKey, payload[valStart:i])
		i = skipSpace(payload, i)
		if payload[i] == ',' {
			i = skipSpace(payload, i+1)
		}
	}
	cmd, ok := req.Get("cmd")
	if !ok {
		return ErrMissingInvalidCmd
	}
	s, ok := String(cmd)
	if !ok || s == CmdGranted || s == CmdJoined || s == CmdLeft {
		return ErrMissingInvalidCmd
	}
	req.Cmd = s
	return nil
}

// set records key=value, keeping the first position of a repeated key.
func (r *Request) set(rawKey, value []byte) {
	key := unquoteKey(rawKey)
	if i, ok := r.find(key); ok {
		r.Fields[i].Value = value
		return
	}
	r.Fields = append(r.Fields, Field{Key: key, RawKey: rawKey, Value: value})
	switch n := len(r.Fields); {
	case r.indexed:
		r.index[key] = n - 1
	case n == indexFrom:
		r.buildIndex()
	}
}

// find returns the position of key in Fields. The index is trusted while
// it still describes Fields (one entry per field, the hit's key in place):
// a caller that edits Fields gets a scan instead.
func (r *Request) find(key string) (int, bool) {
	if r.indexed && len(r.index) == len(r.Fields) {
		i, ok := r.index[key]
		if !ok || r.Fields[i].Key == key {
			return i, ok
		}
	}
	for i := range r.Fields {
		if r.Fields[i].Key == key {
			return i, true
		}
	}
	return 0, false
}

// buildIndex indexes Fields, reusing the map of an earlier request unless
// that one was large (a pooled Request should not pin a huge table).
func (r *Request) buildIndex() {
	if r.index == nil || len(r.index) > 1024 {
		r.index = make(map[string]int, 2*indexFrom)
	} else {
		clear(r.index)
	}
	for i := range r.Fields {
		r.index[r.Fields[i].Key] = i
	}
	r.indexed = true
}

// Get returns the raw JSON value of the top-level field key. A field whose
// value is null counts as absent, as PHP's isset does.
func (r *Request) Get(key string) ([]byte, bool) {
	i, ok := r.find(key)
	if !ok {
		return nil, false
	}
	v := r.Fields[i].Value
	if string(v) == "null" {
		return nil, false
	}
	return v, true
}

// unquoteKey returns the unescaped key of a JSON string token. Keys without
// escapes (nearly all) cost one small allocation; the common keys none.
func unquoteKey(raw []byte) string {
	body := raw[1 : len(raw)-1]
	for _, c := range body {
		if c == '\\' {
			var s string
			if json.Unmarshal(raw, &s) != nil {
				return string(body)
			}
			return s
		}
	}
	switch string(body) { // the compiler does not allocate for these
	case "cmd":
		return "cmd"
	case "channel":
		return "channel"
	case "to":
		return "to"
	case "protocol":
		return "protocol"
	case "token":
		return "token"
	case "id":
		return "id"
	case "extra":
		return "extra"
	}
	return string(body)
}

// String returns the Go string of a raw JSON string value. ok is false for
// any other JSON type.
func String(raw []byte) (s string, ok bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	body := raw[1 : len(raw)-1]
	for _, c := range body {
		if c == '\\' {
			if json.Unmarshal(raw, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return string(body), true
}

// Number interprets a raw JSON value the way PHP's is_numeric does: a JSON
// number, or a string holding a decimal number (leading and trailing
// whitespace allowed). ok is false for anything else, including booleans.
// f is the value; use Int for PHP's (int) conversion.
func Number(raw []byte) (f float64, ok bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var text []byte
	switch c := raw[0]; {
	case c == '-' || (c >= '0' && c <= '9'):
		text = raw
	case c == '"':
		s, isStr := String(raw)
		if !isStr {
			return 0, false
		}
		text = trimNumericSpace([]byte(s))
		if !isDecimal(text) {
			return 0, false
		}
	default:
		return 0, false
	}
	f, err := strconv.ParseFloat(string(text), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}

// Int is Number followed by PHP's (int) conversion: the value truncated
// toward zero. ok is false when the value is not numeric or does not fit in
// an int64.
func Int(raw []byte) (n int64, ok bool) {
	// Fast path: a plain JSON integer.
	if len(raw) > 0 && len(raw) < 19 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		if v, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			return v, true
		}
	}
	f, ok := Number(raw)
	if !ok || f >= 9.2e18 || f <= -9.2e18 {
		return 0, false
	}
	return int64(f), true
}

// IsContainer reports whether raw is a JSON object or array (what PHP's
// decoder turns into an array, so what DRC accepts as `extra`).
func IsContainer(raw []byte) bool {
	return len(raw) > 0 && (raw[0] == '{' || raw[0] == '[')
}

func trimNumericSpace(b []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' }
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// isDecimal reports whether b is [+-]digits[.digits][e[+-]digits] with at
// least one digit in the mantissa, PHP's numeric string grammar.
func isDecimal(b []byte) bool {
	i := 0
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		i++
	}
	digits := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
		digits++
	}
	if i < len(b) && b[i] == '.' {
		i++
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		exp := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(b)
}

// The scanners below run only on input json.Valid accepted, so they need
// not check syntax.

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the string token starting at i.
func skipString(b []byte, i int) int {
	i++
	for {
		switch b[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
}

// skipValue returns the index just past the value starting at i.
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
	default:
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}
