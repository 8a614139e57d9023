package protocol_test

import (
	"testing"

	"github.com/relay-project/relay/relay/protocol"
)

func TestExactString(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want string
		ok   bool
	}{
		{`"room"`, "room", true},
		{`"r\u006fom"`, "room", true},
		{`"\ufffd"`, "\ufffd", true},
		{`"\ud83d\ude00"`, "😀", true},
		{`"\uD83D\uDE00"`, "😀", true},
		{`"a\\ud800"`, `a\ud800`, true}, // an escaped backslash, then text
		{`"\ud800"`, "", false},
		{`"\udfff"`, "", false},
		{`"\ud800x"`, "", false},
		{`"\ud800\u0041"`, "", false},
		{`"\ud800\ud800"`, "", false},
		{`"\ud83d\ude00\udc00"`, "", false},
		{`"\ud800\n"`, "", false},
		{`1`, "", false},
	} {
		got, ok := protocol.ExactString([]byte(tc.raw))
		if got != tc.want || ok != tc.ok {
			t.Errorf("ExactString(%s) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
}
