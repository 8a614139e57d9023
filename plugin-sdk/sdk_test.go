package sdk

import (
	"encoding/binary"
	"errors"
	"testing"
	"time"
)

func TestBodyFields(t *testing.T) {
	b, err := NewBody([]byte(` { "a" : 1, "s":"plain", "e":"tab\there \u00e9 \ud83d\ude00", "o":{"x":"}"}, "arr":[1,"]"], "a":2, "n":null, "t":true, "f":1.0 } `))
	if err != nil {
		t.Fatal(err)
	}
	if b.Len() != 8 {
		t.Fatalf("Len %d, want 8 (duplicate a collapses)", b.Len())
	}
	if v, _ := b.Field("a"); string(v) != "2" {
		t.Errorf("a = %s, want the last value 2", v)
	}
	if s, ok := b.String("s"); !ok || s != "plain" {
		t.Errorf("s = %q %v", s, ok)
	}
	if s, ok := b.String("e"); !ok || s != "tab\there é 😀" {
		t.Errorf("e = %q %v", s, ok)
	}
	if v, _ := b.Field("o"); string(v) != `{"x":"}"}` || v.Kind() != KindObject {
		t.Errorf("o = %s", v)
	}
	if v, _ := b.Field("arr"); string(v) != `[1,"]"]` || v.Kind() != KindArray {
		t.Errorf("arr = %s", v)
	}
	if n, ok := mustField(b, "f").Int(); !ok || n != 1 {
		t.Errorf("f as int = %d %v", n, ok)
	}
	if v, ok := mustField(b, "t").Bool(); !ok || !v {
		t.Errorf("t = %v %v", v, ok)
	}
	if mustField(b, "n").Kind() != KindNull {
		t.Error("n is not null")
	}
	if _, ok := b.String("a"); ok {
		t.Error("a number read as a string")
	}
	if b.Has("missing") {
		t.Error("Has(missing)")
	}
	for _, bad := range []string{``, `[]`, `{"a"}`, `{"a":1,}`, `{"a":"x}`, `{"a":1} x`, `{"a":[1}`} {
		if _, err := NewBody([]byte(bad)); err == nil {
			t.Errorf("NewBody(%s) accepted", bad)
		}
	}
}

func mustField(b Body, name string) Value {
	v, _ := b.Field(name)
	return v
}

func TestBodyEditor(t *testing.T) {
	b, _ := NewBody([]byte(`{"a":1,"b":"x","c":[2]}`))
	got := string(b.Edit().SetString("b", `q"uote`).Delete("a").Set("d", []byte(`{"k":true}`)).Bytes())
	if want := `{"b":"q\"uote","c":[2],"d":{"k":true}}`; got != want {
		t.Fatalf("edit = %s, want %s", got, want)
	}
	if got := string(b.Edit().Delete("a").Delete("b").Delete("c").Bytes()); got != `{}` {
		t.Fatalf("empty edit = %s", got)
	}
}

func field(rec []byte, tag uint16, v []byte) []byte {
	rec = binary.LittleEndian.AppendUint16(rec, tag)
	rec = binary.LittleEndian.AppendUint32(rec, uint32(len(v)))
	return append(rec, v...)
}

func i64(n int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(n)) }

func TestDispatchFilter(t *testing.T) {
	defer func() { filterHandler = nil }()
	body := []byte(`{"text":"hi","n":1}`)
	idx, _ := indexObject(body, nil)
	var rec []byte
	rec = field(rec, tagClientID, i64(42))
	rec = field(rec, tagChannelName, []byte("room"))
	rec = field(rec, tagChannelProtocol, []byte("chat"))
	rec = field(rec, tagNow, i64(time.Unix(100, 0).UnixNano()))
	rec = field(rec, tagCmd, []byte("say"))
	rec = field(rec, tagTo, i64(-1))
	rec = field(rec, tagBody, body)
	rec = field(rec, tagBodyIndex, idx)
	rec = field(rec, 999, []byte("unknown tags are skipped"))

	var seen Message
	HandleFilterMessage(func(m *Message) (Verdict, error) {
		seen = *m
		text, _ := m.Body.String("text")
		return Deny("no_"+text, "denied "+m.Cmd), nil
	})
	if v := dispatch(hookFilter, rec); v != verdictDeny {
		t.Fatalf("verdict %d", v)
	}
	if seen.Sender.ID != 42 || seen.Channel.Name != "room" || seen.Cmd != "say" || seen.To != -1 || seen.Now.Unix() != 100 {
		t.Fatalf("decoded %+v", seen)
	}
	code, msg := outputStrings(t)
	if code != "no_hi" || msg != "denied say" {
		t.Fatalf("output %q %q", code, msg)
	}

	HandleFilterMessage(func(*Message) (Verdict, error) { panic("boom") })
	if v := dispatch(hookFilter, rec); v != verdictPanic {
		t.Fatalf("panic gave verdict %d", v)
	}
	if _, msg := outputStrings(t); msg != "panic: boom" {
		t.Fatalf("panic message %q", msg)
	}
	HandleFilterMessage(func(*Message) (Verdict, error) { return Verdict{}, errors.New("nope") })
	if v := dispatch(hookFilter, rec); v != verdictError {
		t.Fatalf("error gave verdict %d", v)
	}
	if v := dispatch(hookFilter, rec[:5]); v != verdictError {
		t.Fatalf("truncated input gave verdict %d", v)
	}
	if hooksMask() != hookBitFilterMessage {
		t.Fatalf("hooks mask %b", hooksMask())
	}
}

func outputStrings(t *testing.T) (code, msg string) {
	rec := output.b
	for len(rec) > 0 {
		tag, v, rest, err := readField(rec)
		if err != nil {
			t.Fatal(err)
		}
		switch tag {
		case tagErrorCode:
			code = string(v)
		case tagMessage:
			msg = string(v)
		}
		rec = rest
	}
	return code, msg
}
