package plugin

import (
	"encoding/binary"
	"errors"
)

// This file is a copy of the indexer in plugin-sdk/body.go (the SDK indexes
// bodies for NewBody, the host for every filter-message call); the format is
// part of the ABI, and TestBodyIndexerMatchesSDK keeps the two identical.

var errNotObject = errors.New("body is not a JSON object")

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
