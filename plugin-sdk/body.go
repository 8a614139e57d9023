package sdk

import (
	"encoding/binary"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Body is a message body: a JSON object as the sender wrote it, without the
// relay's own fields (cmd, channel, to). The host indexes its top-level
// fields, so reading a field costs a short scan of the index, never a JSON
// decode. A Body and every Value taken from it are valid only during the
// hook call that received it; copy what you keep.
type Body struct {
	raw   []byte
	index []byte // indexEntry bytes per field, see indexObject
}

var errNotObject = errors.New("sdk: body is not a JSON object")

// NewBody indexes raw, which must be a JSON object. Hooks receive bodies
// already indexed; NewBody is for tests and for building a body to inspect.
func NewBody(raw []byte) (Body, error) {
	idx, err := indexObject(raw, nil)
	if err != nil {
		return Body{}, err
	}
	return Body{raw: raw, index: idx}, nil
}

// Raw returns the body's JSON text.
func (b Body) Raw() []byte { return b.raw }

// Len returns the number of top-level fields.
func (b Body) Len() int { return len(b.index) / indexEntry }

func (b Body) entry(i int) (key, val []byte, flags uint32) {
	e := b.index[i*indexEntry:]
	ko := binary.LittleEndian.Uint32(e)
	kl := binary.LittleEndian.Uint32(e[4:])
	vo := binary.LittleEndian.Uint32(e[8:])
	vl := binary.LittleEndian.Uint32(e[12:])
	return b.raw[ko : ko+kl], b.raw[vo : vo+vl], binary.LittleEndian.Uint32(e[16:])
}

func (b Body) find(name string) (val []byte, flags uint32, ok bool) {
	for e := 0; e+indexEntry <= len(b.index); e += indexEntry {
		ko := binary.LittleEndian.Uint32(b.index[e:])
		kl := binary.LittleEndian.Uint32(b.index[e+4:])
		if int(kl) == len(name) && string(b.raw[ko:ko+kl]) == name {
			vo := binary.LittleEndian.Uint32(b.index[e+8:])
			vl := binary.LittleEndian.Uint32(b.index[e+12:])
			return b.raw[vo : vo+vl], binary.LittleEndian.Uint32(b.index[e+16:]), true
		}
	}
	return nil, 0, false
}

// Field returns the raw JSON value of the top-level field name. When a name
// repeats in the message, the last one wins, as in the relay. Names are
// compared with their JSON text, so a name written with escapes only
// matches its escaped form.
func (b Body) Field(name string) (Value, bool) {
	v, _, ok := b.find(name)
	return Value(v), ok
}

// Has reports whether the body has a top-level field name.
func (b Body) Has(name string) bool {
	_, ok := b.Field(name)
	return ok
}

// String returns the field name as a string when it is a JSON string.
func (b Body) String(name string) (string, bool) {
	v, flags, ok := b.find(name)
	if !ok {
		return "", false
	}
	if flags&flagPlainString != 0 {
		return string(v[1 : len(v)-1]), true
	}
	return Value(v).String()
}

// Each calls f for every top-level field in order until f returns false.
// The key is the field name's JSON text without its quotes.
func (b Body) Each(f func(key string, v Value) bool) {
	for i := 0; i < b.Len(); i++ {
		k, v, _ := b.entry(i)
		if !f(string(k), Value(v)) {
			return
		}
	}
}

// Kind is the JSON type of a Value.
type Kind uint8

// The JSON types a Value can have.
const (
	KindInvalid Kind = iota
	KindNull
	KindBool
	KindNumber
	KindString
	KindArray
	KindObject
)

// Value is one raw JSON value.
type Value []byte

// Kind returns the JSON type of v, judged by its first byte.
func (v Value) Kind() Kind {
	if len(v) == 0 {
		return KindInvalid
	}
	switch v[0] {
	case 'n':
		return KindNull
	case 't', 'f':
		return KindBool
	case '"':
		return KindString
	case '[':
		return KindArray
	case '{':
		return KindObject
	}
	return KindNumber
}

// String decodes v when it is a JSON string.
func (v Value) String() (string, bool) {
	if v.Kind() != KindString || len(v) < 2 {
		return "", false
	}
	inner := v[1 : len(v)-1]
	for _, c := range inner {
		if c == '\\' {
			return unescape(inner)
		}
	}
	return string(inner), true
}

// Int decodes v when it is a JSON number with an integer value.
func (v Value) Int() (int64, bool) {
	if v.Kind() != KindNumber {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || f != float64(int64(f)) {
			return 0, false
		}
		return int64(f), true
	}
	return n, true
}

// Bool decodes v when it is true or false.
func (v Value) Bool() (bool, bool) {
	switch string(v) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

func unescape(s []byte) (string, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(s) {
			return "", false
		}
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(s[i+1:])
			if !ok {
				return "", false
			}
			i += 4
			if r >= 0xD800 && r < 0xDC00 && i+6 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
				if r2, ok := hex4(s[i+3:]); ok && r2 >= 0xDC00 && r2 < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (r2 - 0xDC00)
					i += 6
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return string(out), true
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// Quote returns s as a JSON string value.
func Quote(s string) []byte { return appendQuoted(nil, s) }

func appendQuoted(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// BodyEditor builds a new body from an existing one by setting and
// deleting top-level fields, copying everything else byte for byte.
type BodyEditor struct {
	src   Body
	drop  map[string]bool
	set   map[string][]byte
	order []string
}

// Edit starts a BodyEditor on b.
func (b Body) Edit() *BodyEditor {
	return &BodyEditor{src: b, drop: map[string]bool{}, set: map[string][]byte{}}
}

// Set gives field name the raw JSON value raw; the caller vouches that raw is
// valid JSON (the host checks the result and rejects a malformed body).
// An existing field keeps its position; a new one goes last.
func (e *BodyEditor) Set(name string, raw []byte) *BodyEditor {
	if _, ok := e.set[name]; !ok {
		e.order = append(e.order, name)
	}
	e.set[name] = raw
	delete(e.drop, name)
	return e
}

// SetString gives field name the string value s.
func (e *BodyEditor) SetString(name, s string) *BodyEditor { return e.Set(name, Quote(s)) }

// Delete removes every occurrence of field name.
func (e *BodyEditor) Delete(name string) *BodyEditor {
	e.drop[name] = true
	if _, ok := e.set[name]; ok {
		delete(e.set, name)
	}
	return e
}

// Bytes returns the new body's JSON text.
func (e *BodyEditor) Bytes() []byte {
	out := make([]byte, 0, len(e.src.raw)+16)
	out = append(out, '{')
	written := map[string]bool{}
	first := true
	sep := func() {
		if !first {
			out = append(out, ',')
		}
		first = false
	}
	for i := 0; i < e.src.Len(); i++ {
		k, v, _ := e.src.entry(i)
		name := string(k)
		if e.drop[name] || written[name] {
			continue
		}
		if nv, ok := e.set[name]; ok {
			// A replaced field keeps its first position; duplicates collapse.
			sep()
			out = append(out, '"')
			out = append(out, k...)
			out = append(out, '"', ':')
			out = append(out, nv...)
			written[name] = true
			continue
		}
		sep()
		out = append(out, '"')
		out = append(out, k...)
		out = append(out, '"', ':')
		out = append(out, v...)
	}
	for _, name := range e.order {
		nv, ok := e.set[name]
		if !ok || written[name] {
			continue
		}
		sep()
		out = appendQuoted(out, name)
		out = append(out, ':')
		out = append(out, nv...)
	}
	return append(out, '}')
}

// indexEntry is the size of one field's entry in a body index: five
// little-endian u32 (key offset, key length, value offset, value length,
// flags).
const indexEntry = 20

// flagPlainString marks a value that is a JSON string without escapes, so
// its text is the bytes between the quotes.
const flagPlainString = 1

// indexObject scans the top level of the JSON object raw and appends its
// field index to idx. When a name repeats, only the last occurrence is
// indexed. It checks structure (strings, nesting, separators), not the
// spelling of numbers and literals.
func indexObject(raw []byte, idx []byte) ([]byte, error) {
	start := len(idx)
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return nil, errNotObject
	}
	i = skipSpace(raw, i+1)
	if i < len(raw) && raw[i] == '}' {
		if skipSpace(raw, i+1) != len(raw) {
			return nil, errNotObject
		}
		return idx, nil
	}
	for {
		if i >= len(raw) || raw[i] != '"' {
			return nil, errNotObject
		}
		kend, _, ok := skipString(raw, i)
		if !ok {
			return nil, errNotObject
		}
		ko, kl := i+1, kend-i-2
		i = skipSpace(raw, kend)
		if i >= len(raw) || raw[i] != ':' {
			return nil, errNotObject
		}
		i = skipSpace(raw, i+1)
		vend, flags, ok := skipValue(raw, i)
		if !ok {
			return nil, errNotObject
		}
		// Drop an earlier field of the same name.
		key := raw[ko : ko+kl]
		for e := start; e < len(idx); e += indexEntry {
			eo := binary.LittleEndian.Uint32(idx[e:])
			el := binary.LittleEndian.Uint32(idx[e+4:])
			if string(raw[eo:eo+el]) == string(key) {
				idx = append(idx[:e], idx[e+indexEntry:]...)
				break
			}
		}
		idx = binary.LittleEndian.AppendUint32(idx, uint32(ko))
		idx = binary.LittleEndian.AppendUint32(idx, uint32(kl))
		idx = binary.LittleEndian.AppendUint32(idx, uint32(i))
		idx = binary.LittleEndian.AppendUint32(idx, uint32(vend-i))
		idx = binary.LittleEndian.AppendUint32(idx, flags)
		i = skipSpace(raw, vend)
		if i >= len(raw) {
			return nil, errNotObject
		}
		if raw[i] == '}' {
			if skipSpace(raw, i+1) != len(raw) {
				return nil, errNotObject
			}
			return idx, nil
		}
		if raw[i] != ',' {
			return nil, errNotObject
		}
		i = skipSpace(raw, i+1)
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'
// and whether the string has escapes.
func skipString(b []byte, i int) (end int, escaped bool, ok bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return j + 1, escaped, true
		}
	}
	return 0, false, false
}

// skipValue returns the index after the JSON value starting at b[i] and its
// index flags.
func skipValue(b []byte, i int) (int, uint32, bool) {
	if i >= len(b) {
		return 0, 0, false
	}
	switch b[i] {
	case '"':
		end, escaped, ok := skipString(b, i)
		if !escaped {
			return end, flagPlainString, ok
		}
		return end, 0, ok
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _, ok := skipString(b, j)
				if !ok {
					return 0, 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, 0, true
				}
			}
		}
		return 0, 0, false
	}
	j := i
	for j < len(b) {
		c := b[j]
		if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			break
		}
		j++
	}
	if j == i {
		return 0, 0, false
	}
	return j, 0, true
}
