package protocol_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/relay-project/relay/relay/protocol"
)

// FuzzDecodeFields checks Decode against encoding/json: what it accepts is a JSON
// object whose keys are exactly Fields' (each once, holding the key's last
// value, as PHP's decoder keeps it), and what is not a JSON object in UTF-8
// is refused as invalid_data. Seeds: testdata/fuzz/FuzzDecodeFields.
func FuzzDecodeFields(f *testing.F) {
	f.Add([]byte(`{"cmd":"JOIN","channel":"a","protocol":"p"}`))
	f.Add([]byte(` { "cmd" : "X" , "a" : [1, {"b": "}"}] , "c":"\"" , "a":null} `))
	f.Add([]byte(`{"c\u006dd":"X","cmd":"Y","\u0000":1,"":2}`))
	f.Add([]byte(`{"cmd":"B","k0":0,"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k3":"again"}`))
	f.Add([]byte(`{"cmd":"LEFT"}`))
	f.Add([]byte(`[]`))
	var req protocol.Request // reused, as the relay reuses pooled requests
	f.Fuzz(func(t *testing.T, payload []byte) {
		err := protocol.Decode(payload, &req)
		var want map[string]json.RawMessage
		isObject := utf8.Valid(payload) && json.Unmarshal(payload, &want) == nil && want != nil
		if !isObject {
			if err == nil {
				t.Fatalf("accepted %q, which is not a JSON object", payload)
			}
			return
		}
		if err != nil {
			return
		}
		if len(req.Fields) != len(want) {
			t.Fatalf("%q: %d fields, want %d", payload, len(req.Fields), len(want))
		}
		for _, fl := range req.Fields {
			w, ok := want[fl.Key]
			if !ok || !bytes.Equal(fl.Value, w) {
				t.Fatalf("%q: field %q = %s, want %s", payload, fl.Key, fl.Value, w)
			}
			if v, ok := req.Get(fl.Key); string(fl.Value) != "null" && (!ok || !bytes.Equal(v, fl.Value)) {
				t.Fatalf("%q: Get(%q) = %s", payload, fl.Key, v)
			}
		}
		if cmd, _ := protocol.String(want["cmd"]); cmd != req.Cmd {
			t.Fatalf("%q: cmd %q, want %q", payload, req.Cmd, cmd)
		}
	})
}

// FuzzNumbers checks the numeric readers (PHP's is_numeric, then (int)):
// they never panic, Int agrees with Number, a JSON number agrees with
// strconv, and a channel number is accepted exactly when it is a positive
// Int. Seeds: testdata/fuzz/FuzzNumbers.
func FuzzNumbers(f *testing.F) {
	for _, s := range []string{`3`, `-1`, `3.9`, `1e2`, `"3"`, `" 7 "`, `".5"`, `"+4"`, `"1e3"`, `"0x1A"`, `"1e"`,
		`true`, `[]`, `1e300`, `"9999999999999999999999"`, `9223372036854775807`, `-0`, `"\u0033"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fv, numOK := protocol.Number(raw)
		n, intOK := protocol.Int(raw)
		if intOK && !numOK {
			t.Fatalf("Int(%s) = %d but Number refuses it", raw, n)
		}
		if numOK && (math.IsNaN(fv) || math.IsInf(fv, 0)) {
			t.Fatalf("Number(%s) = %v", raw, fv)
		}
		if intOK && math.Abs(fv) < 1<<53 && n != int64(fv) {
			t.Fatalf("Int(%s) = %d, Number %v", raw, n, fv)
		}
		if json.Valid(raw) && len(raw) > 0 && (raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
			want, err := strconv.ParseFloat(string(raw), 64)
			if (err == nil && !math.IsInf(want, 0)) != numOK || numOK && want != fv {
				t.Fatalf("Number(%s) = %v %v, strconv %v %v", raw, fv, numOK, want, err)
			}
		}
		if !json.Valid(raw) {
			return
		}
		var req protocol.Request
		if protocol.Decode([]byte(`{"cmd":"X","channel":`+string(raw)+`}`), &req) != nil {
			return
		}
		// Decode hands Int the value without the whitespace around it.
		n, intOK = protocol.Int(bytes.Trim(raw, " \t\r\n"))
		ch, code := protocol.ChannelNumber(&req)
		if (code == "") != (intOK && n > 0) || code == "" && ch != n {
			t.Fatalf("ChannelNumber(%s) = %d %q, Int %d %v", raw, ch, code, n, intOK)
		}
	})
}
