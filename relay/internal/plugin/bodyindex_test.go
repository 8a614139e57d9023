package plugin

import (
	"encoding/binary"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// FuzzIndexObject checks the body indexer on arbitrary input (a plugin's
// rewritten body is untrusted): it never panics, and what it accepts as a
// valid JSON object it indexes with in-bounds, valid, uniquely named fields.
func FuzzIndexObject(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":"x\"y","b":[1,{"c":"}"}],"a":null}`, ` { "k" : true } `, `{"a":1,}`, `[1]`, `{"a`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		idx, err := indexObject(raw, nil)
		if err != nil || !json.Valid(raw) || !utf8.Valid(raw) {
			return // bodies are UTF-8: the relay and the host check that first
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			t.Fatalf("indexed %q, which is not a JSON object", raw)
		}
		if len(idx)%indexEntry != 0 {
			t.Fatalf("index length %d", len(idx))
		}
		seen := map[string]bool{}
		for e := 0; e < len(idx); e += indexEntry {
			ko, kl := binary.LittleEndian.Uint32(idx[e:]), binary.LittleEndian.Uint32(idx[e+4:])
			vo, vl := binary.LittleEndian.Uint32(idx[e+8:]), binary.LittleEndian.Uint32(idx[e+12:])
			if uint64(ko)+uint64(kl) > uint64(len(raw)) || uint64(vo)+uint64(vl) > uint64(len(raw)) {
				t.Fatalf("entry out of bounds in %q", raw)
			}
			key, val := string(raw[ko:ko+kl]), raw[vo:vo+vl]
			if seen[key] {
				t.Fatalf("key %q indexed twice in %q", key, raw)
			}
			seen[key] = true
			if !json.Valid(val) {
				t.Fatalf("value %q of %q is not JSON", val, key)
			}
			if flags := binary.LittleEndian.Uint32(idx[e+16:]); flags&flagPlainString != 0 {
				var s string
				if json.Unmarshal(val, &s) != nil || s != string(val[1:len(val)-1]) {
					t.Fatalf("value %q flagged plain but decodes differently", val)
				}
			}
		}
		if len(seen) != len(m) && !hasEscapedKeys(m, seen) {
			t.Fatalf("indexed %d names, JSON has %d in %q", len(seen), len(m), raw)
		}
	})
}

// hasEscapedKeys reports whether a difference in counts comes from keys
// written with escapes (the index compares raw key text).
func hasEscapedKeys(m map[string]json.RawMessage, seen map[string]bool) bool {
	for k := range seen {
		if _, ok := m[k]; !ok {
			return true
		}
	}
	return false
}
