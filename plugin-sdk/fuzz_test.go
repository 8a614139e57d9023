package sdk

import (
	"encoding/json"
	"testing"
)

// FuzzHookInput feeds arbitrary input records to the SDK's hook-input
// decoders, as a plugin would receive them: they never panic, and a record
// that is not well formed is an error rather than a half-read hook input.
func FuzzHookInput(f *testing.F) {
	var w recordWriter
	w.int(tagClientID, 7)
	w.str(tagClientAddr, "203.0.113.9")
	w.str(tagToken, "a.b.c")
	w.str(tagChannelName, "room")
	w.str(tagChannelProtocol, "chat")
	w.int(tagNow, 1_800_000_000_000_000_000)
	w.bool(tagAllowed, true)
	w.bytes(tagExtra, []byte(`{"a":1}`))
	f.Add(append([]byte(nil), w.b...))
	f.Add([]byte{4, 0, 255, 255, 255, 255, 'x'})
	f.Add([]byte{1, 0, 1})
	f.Fuzz(func(t *testing.T, rec []byte) {
		var j Join
		errJoin := decodeJoin(rec, &j)
		var tr TokenRequest
		errToken := decodeToken(rec, &tr)
		var m, last Message
		errMsg := decodeMessage(rec, &m, &last)
		if (errJoin == nil) != (errToken == nil) || (errJoin == nil) != (errMsg == nil) {
			t.Fatalf("the decoders disagree on whether %x is well formed: %v, %v, %v", rec, errJoin, errToken, errMsg)
		}
	})
}

// FuzzNewBody checks the SDK's body indexer on arbitrary input: it never
// panics, accepts every JSON object, and every field it indexes can be
// read. (It skims nested values without validating them: the relay hands
// hooks bodies it has already validated, and NewBody's caller must pass a
// JSON object.)
func FuzzNewBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":"x","a":[1,{"c":null}]}`, `{"\u00e9":"\ud800"}`, `[1]`, `{"a":`, ` {"a" : true } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := NewBody(raw)
		if err != nil {
			var obj map[string]json.RawMessage
			if json.Unmarshal(raw, &obj) == nil && obj != nil {
				t.Fatalf("NewBody refused the JSON object %q: %v", raw, err)
			}
			return
		}
		b.Each(func(key string, v Value) bool {
			if got, ok := b.Field(key); !ok || len(got) == 0 {
				t.Fatalf("field %q indexed but not found in %q", key, raw)
			}
			_ = v.Kind()
			return true
		})
	})
}
