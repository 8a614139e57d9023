package sdk

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzNewBody checks the SDK's body indexer and readers on arbitrary input
// (a plugin calls NewBody on configuration and on bodies it builds): nothing
// panics, and on a valid JSON object every string field reads as
// encoding/json decodes it and an unchanged edit stays valid JSON.
func FuzzNewBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"a":2}`, `{"s":"x\"y\u00e9\ud83d\ude00","o":{"k":"}"},"l":[1,"]"]}`,
		` { "n" : null , "t":true,"f":-1.5e3 } `, `{"a":1,}`, `{"a"}`, `[1]`, `{"\u0061":"b"}`, `{"a":"\ud800"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := NewBody(raw)
		if err != nil {
			return
		}
		b.Each(func(key string, v Value) bool {
			v.Kind()
			v.Int()
			v.Bool()
			s, ok := b.String(key)
			var want string
			if ok && utf8.Valid(raw) && json.Valid(raw) && json.Unmarshal(v, &want) == nil && s != want && utf8.ValidString(want) && !hasSurrogate(v) {
				t.Fatalf("field %q reads %q, encoding/json says %q", key, s, want)
			}
			return true
		})
		edited := b.Edit().Set("zz", []byte("1")).Bytes()
		if utf8.Valid(raw) && json.Valid(raw) && !json.Valid(edited) {
			t.Fatalf("edit of %q gave invalid JSON %q", raw, edited)
		}
	})
}

// hasSurrogate reports whether a JSON string has a \u escape in the
// surrogate range, which encoding/json replaces with U+FFFD when unpaired.
func hasSurrogate(v []byte) bool {
	for i := 0; i+5 < len(v); i++ {
		if v[i] == '\\' && v[i+1] == 'u' && (v[i+2]|0x20) == 'd' && v[i+3] >= '8' {
			return true
		}
	}
	return false
}

// FuzzDecodeInputs feeds arbitrary records to the three hook-input
// decoders: a malformed record is an error, never a panic.
func FuzzDecodeInputs(f *testing.F) {
	var w recordWriter
	w.int(tagClientID, 7)
	w.str(tagClientAddr, "10.0.0.1")
	w.str(tagToken, "tok")
	w.bytes(tagExtra, []byte(`{"a":1}`))
	w.bool(tagAllowed, true)
	w.int(tagLifetime, 30000)
	f.Add(w.b)
	f.Add([]byte{1, 0, 9, 0, 0, 0, 1})
	f.Add([]byte{34, 0, 2, 0, 0, 0, '{', '}', 35, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, rec []byte) {
		var j Join
		_ = decodeJoin(rec, &j)
		var m, last Message
		_ = decodeMessage(rec, &m, &last)
		var tr TokenRequest
		_ = decodeToken(rec, &tr)
	})
}

// FuzzJoinRoundTrip checks that what the host encodes the SDK decodes
// unchanged, whatever the values.
func FuzzJoinRoundTrip(f *testing.F) {
	f.Add(int64(1), "127.0.0.1", "https://a.example", "eyJ.x.y", "room", "chat", true, int64(2), []byte(`{"k":"v"}`), int64(1700000000000000000))
	f.Add(int64(-1), "", "", "", "", "", false, int64(-9), []byte(nil), int64(0))
	f.Fuzz(func(t *testing.T, id int64, addr, origin, tok, name, proto string, allowed bool, mode int64, extra []byte, now int64) {
		var w recordWriter
		w.int(tagClientID, id)
		w.str(tagClientAddr, addr)
		w.str(tagClientOrigin, origin)
		w.str(tagToken, tok)
		w.str(tagChannelName, name)
		w.str(tagChannelProtocol, proto)
		w.int(tagNow, now)
		w.bool(tagAllowed, allowed)
		w.int(tagMode, mode)
		w.bytes(tagExtra, extra)
		var j Join
		if err := decodeJoin(w.b, &j); err != nil {
			t.Fatal(err)
		}
		want := Join{Client: Client{ID: id, Addr: addr, Origin: origin}, Channel: Channel{Name: name, Protocol: proto},
			Token: tok, Now: time.Unix(0, now), Allowed: allowed, Mode: int(mode)}
		if j.Client != want.Client || j.Channel != want.Channel || j.Token != tok || !j.Now.Equal(want.Now) ||
			j.Allowed != allowed || j.Mode != int(mode) || string(j.Extra) != string(extra) {
			t.Fatalf("decoded %+v, want %+v with extra %q", j, want, extra)
		}
	})
}
