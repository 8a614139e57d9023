package protocol_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay/protocol"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		in     string
		err    error
		cmd    string
		fields string // keys in order
	}{
		{`{"cmd":"JOIN","channel":"a"}`, nil, "JOIN", "cmd,channel"},
		{` { "cmd" : "X" , "a" : [1, {"b": "}"}] , "c":"\"" } `, nil, "X", "cmd,a,c"},
		{`{"a":1,"cmd":"X","a":2}`, nil, "X", "a,cmd"},
		{`{"c\u006dd":"X"}`, nil, "X", "cmd"},
		{`{"cmd":"\u004aOIN"}`, nil, "JOIN", "cmd"},
		{`[]`, protocol.ErrInvalidData, "", ""},
		{``, protocol.ErrInvalidData, "", ""},
		{`{"cmd":"X"} x`, protocol.ErrInvalidData, "", ""},
		{"{\"cmd\":\"\xc3\x28\"}", protocol.ErrInvalidData, "", ""},
		{`{"cmd":true}`, protocol.ErrMissingInvalidCmd, "", ""},
		{`{"cmd":"LEFT"}`, protocol.ErrMissingInvalidCmd, "", ""},
		{`{"cmd":null}`, protocol.ErrMissingInvalidCmd, "", ""},
	} {
		var req protocol.Request
		err := protocol.Decode([]byte(tc.in), &req)
		if err != tc.err {
			t.Errorf("%s: err %v, want %v", tc.in, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		keys := ""
		for i, f := range req.Fields {
			if i > 0 {
				keys += ","
			}
			keys += f.Key
		}
		if req.Cmd != tc.cmd || keys != tc.fields {
			t.Errorf("%s: cmd %q keys %q, want %q %q", tc.in, req.Cmd, keys, tc.cmd, tc.fields)
		}
	}
}

func TestDuplicateKeyLastValueWins(t *testing.T) {
	var req protocol.Request
	if err := protocol.Decode([]byte(`{"to":1,"cmd":"X","to":"-1"}`), &req); err != nil {
		t.Fatal(err)
	}
	raw, _ := req.Get("to")
	if n, ok := protocol.Int(raw); !ok || n != -1 {
		t.Fatalf("to = %s", raw)
	}
}

func TestNumbers(t *testing.T) {
	for _, tc := range []struct {
		in string
		n  int64
		ok bool
	}{
		{`3`, 3, true}, {`-1`, -1, true}, {`3.0`, 3, true}, {`3.9`, 3, true}, {`-0.5`, 0, true},
		{`1e2`, 100, true}, {`"3"`, 3, true}, {`"-1"`, -1, true}, {`" 7 "`, 7, true}, {`"2.5"`, 2, true},
		{`".5"`, 0, true}, {`"1."`, 1, true}, {`"+4"`, 4, true}, {`"1e3"`, 1000, true},
		{`"abc"`, 0, false}, {`""`, 0, false}, {`"0x1A"`, 0, false}, {`"1e"`, 0, false}, {`"."`, 0, false},
		{`true`, 0, false}, {`false`, 0, false}, {`[]`, 0, false}, {`{}`, 0, false},
		{`1e300`, 0, false}, {`"9999999999999999999999"`, 0, false},
	} {
		n, ok := protocol.Int([]byte(tc.in))
		if ok != tc.ok || n != tc.n {
			t.Errorf("Int(%s) = %d, %v; want %d, %v", tc.in, n, ok, tc.n, tc.ok)
		}
	}
}

func TestAppendMessageDropsServerFieldsAndTo(t *testing.T) {
	var req protocol.Request
	if err := protocol.Decode([]byte(`{"success":false,"cmd":"CHAT","to":-1,"from":9,"channel":"4","text":"hi \u00e9","n":1.5}`), &req); err != nil {
		t.Fatal(err)
	}
	got := string(protocol.AppendMessage(nil, 4, 12, &req))
	want := `{"channel":4,"success":true,"from":12,"cmd":"CHAT","text":"hi \u00e9","n":1.5}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestAppendStringIsValidJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "ctl\x00\x01\x1f\n\r\t", "unicode é ✓ \u2028"} {
		b := protocol.AppendString(nil, s)
		var back string
		if err := json.Unmarshal(b, &back); err != nil || back != s {
			t.Errorf("AppendString(%q) = %s (err %v, back %q)", s, b, err, back)
		}
	}
}

func TestJoinedSelfFrame(t *testing.T) {
	got := string(protocol.AppendJoinedSelf(nil, 3, 7, protocol.MemberInfo{Mode: 1, Extra: []byte(`{"a":1}`)}, "n", "p", []protocol.Member{
		{ID: 1, Info: protocol.MemberInfo{Auth: true, Mode: 2}},
		{ID: 7, Info: protocol.MemberInfo{Mode: 1, Extra: []byte(`{"a":1}`)}},
	}))
	want := `{"channel":3,"success":true,"cmd":"JOINED","from":0,"id":7,"info":{"auth":false,"mode":1,"extra":{"a":1}},"channelname":"n","protocol":"p","clients":{"1":{"auth":true,"mode":2,"extra":false},"7":{"auth":false,"mode":1,"extra":{"a":1}}}}`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// FuzzDecode checks that Decode never panics, and that whatever it accepts
// re-encodes as a message that is valid JSON carrying the same fields.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"cmd":"X","channel":1,"to":-1,"a":[1,"]"]}`, `{"cmd":"JOIN"}`, `{}`, `[]`, `{"a":{"b":{"c":"\""}},"cmd":"Y"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req protocol.Request
		if err := protocol.Decode(data, &req); err != nil {
			return
		}
		out := protocol.AppendMessage(nil, 1, 2, &req)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("re-encoded %q as invalid JSON %q: %v", data, out, err)
		}
		var in map[string]json.RawMessage
		if err := json.Unmarshal(data, &in); err != nil {
			t.Fatalf("Decode accepted %q that encoding/json refuses: %v", data, err)
		}
		for k := range in {
			switch k {
			case "channel", "success", "from", "cmd", "to":
				continue
			}
			if _, ok := m[k]; !ok {
				t.Fatalf("field %q lost: %s -> %s", k, data, out)
			}
		}
	})
}

// TestDuplicateKeysManyFields: past the size where keys are looked up in a
// map, a repeated key still keeps its first position and its last value,
// escaped spellings count as the same key, and a caller that edits Fields
// still finds what is there.
func TestDuplicateKeysManyFields(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"cmd":"X"`)
	for i := range 40 {
		fmt.Fprintf(&b, `,"k%d":%d`, i, i)
	}
	b.WriteString(`,"k3":"last","\u006b5":"esc","cmd":"Y"}`)
	var req protocol.Request
	for range 2 { // the second time reuses the request's index
		if err := protocol.Decode([]byte(b.String()), &req); err != nil {
			t.Fatal(err)
		}
		if req.Cmd != "Y" || len(req.Fields) != 41 {
			t.Fatalf("cmd %q, %d fields", req.Cmd, len(req.Fields))
		}
		if req.Fields[4].Key != "k3" || string(req.Fields[4].Value) != `"last"` {
			t.Fatalf("field 4 = %s:%s", req.Fields[4].Key, req.Fields[4].Value)
		}
		if v, _ := req.Get("k5"); string(v) != `"esc"` {
			t.Fatalf("k5 = %s", v)
		}
	}
	req.Fields = slices.DeleteFunc(req.Fields, func(f protocol.Field) bool { return f.Key == "k0" })
	if v, ok := req.Get("k39"); !ok || string(v) != "39" {
		t.Fatalf("after an edit, k39 = %s %v", v, ok)
	}
	if _, ok := req.Get("k0"); ok {
		t.Fatal("deleted k0 still found")
	}
	// A small request after a large one does not see stale keys.
	if err := protocol.Decode([]byte(`{"cmd":"Z","a":1}`), &req); err != nil {
		t.Fatal(err)
	}
	if _, ok := req.Get("k3"); ok {
		t.Fatal("stale key from the previous request")
	}
}
