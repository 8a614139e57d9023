package httpapi_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/relay-project/relay/relay/internal/httpapi"
)

// FuzzBodies runs the POST /v1/tokens and /v1/publish body parsers on
// arbitrary bytes: each either refuses with a 400 (or 413) and a code, or
// returns a value within the API's limits. Seeds:
// testdata/fuzz/FuzzBodies.
func FuzzBodies(f *testing.F) {
	f.Add([]byte(`{"channel":"c","protocol":"p","clientmode":1,"extra":{"a":1},"makeauth":true,"lifetime":10}`))
	f.Add([]byte(`{"channel":"c","protocol":"p","cmd":"x","to":3,"fields":{"k":[1,{"b":null}],"k":2},"retain":5}`))
	f.Add([]byte(`{"channel":"c","protocol":"p","cmd":"x","fields":{"to":1}}`))
	f.Add([]byte(`{"channel":"\ud800","protocol":"p","clientmode":"1","extra":[]}`))
	f.Add([]byte(`[1,2]`))
	h := httpapi.New(nil, httpapi.Config{MaxBodyBytes: 65536, RetainMax: time.Hour, GrantLifetime: 30 * time.Second})
	checkErr := func(t *testing.T, what string, err error) {
		var e *httpapi.Error
		if !errors.As(err, &e) || e.Code == "" || e.Message == "" || e.Status != 400 && e.Status != 413 {
			t.Fatalf("%s: error %#v is not a documented refusal", what, err)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if s, err := h.ParseTokenSpec(body); err != nil {
			checkErr(t, "tokens", err)
		} else {
			var extra map[string]any
			if len(s.Channel) == 0 || len(s.Channel) > httpapi.MaxChannelBytes || len(s.Protocol) == 0 || len(s.Protocol) > httpapi.MaxProtocolBytes ||
				!utf8.ValidString(s.Channel) || !utf8.ValidString(s.Protocol) || s.ClientMode < 0 || s.ClientMode > 2 ||
				json.Unmarshal(s.Extra, &extra) != nil || extra == nil || s.Lifetime < 0 || s.Lifetime > 30*time.Second {
				t.Fatalf("accepted a bad token request %q: %+v", body, s)
			}
		}
		if p, err := h.ParsePublication(body); err != nil {
			checkErr(t, "publish", err)
		} else {
			var fields map[string]json.RawMessage
			if len(p.Channel) == 0 || len(p.Channel) > httpapi.MaxChannelBytes || len(p.Protocol) == 0 || len(p.Protocol) > httpapi.MaxProtocolBytes ||
				len(p.Cmd) == 0 || len(p.Cmd) > httpapi.MaxCmdBytes || p.Retain < 0 || p.Retain > time.Hour ||
				json.Unmarshal(append(append([]byte("{"), p.Fields...), '}'), &fields) != nil {
				t.Fatalf("accepted a bad publication %q: %+v", body, p)
			}
			for _, k := range []string{"channel", "success", "from", "cmd", "to", "replayed"} {
				if _, ok := fields[k]; ok {
					t.Fatalf("publication %q sets reserved field %q", body, k)
				}
			}
		}
	})
}
