package plugin

import (
	"encoding/binary"
	"errors"
)

var errNotObject = errors.New("body is not a JSON object")

// indexObject scans the top level of the JSON object raw and appends its
// field index to idx. It checks structure (strings, nesting, separators),
// not the spelling of numbers and literals.
func indexObject(raw []byte, idx []byte) ([]byte, error) {
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
		kend, ok := skipString(raw, i)
		if !ok {
			return nil, errNotObject
		}
		ko, kl := i+1, kend-i-2
		i = skipSpace(raw, kend)
		if i >= len(raw) || raw[i] != ':' {
			return nil, errNotObject
		}
		i = skipSpace(raw, i+1)
		vend, ok := skipValue(raw, i)
		if !ok {
			return nil, errNotObject
		}
		idx = binary.LittleEndian.AppendUint32(idx, uint32(ko))
		idx = binary.LittleEndian.AppendUint32(idx, uint32(kl))
		idx = binary.LittleEndian.AppendUint32(idx, uint32(i))
		idx = binary.LittleEndian.AppendUint32(idx, uint32(vend-i))
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

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return 0, false
}

// skipValue returns the index after the JSON value starting at b[i].
func skipValue(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, ok := skipString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
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
		return 0, false
	}
	return j, true
}
