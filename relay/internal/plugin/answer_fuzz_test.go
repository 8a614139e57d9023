package plugin

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzAnswer feeds arbitrary output records, as a plugin could return
// them, through the answer decoder and the checks every hook applies. The
// guest is untrusted: nothing may panic, and whatever passes the checks is
// something the relay can act on safely.
func FuzzAnswer(f *testing.F) {
	var w recordWriter
	seed := func(build func()) {
		w.reset()
		build()
		f.Add(uint8(verdictAllow), append([]byte(nil), w.b...))
	}
	seed(func() {})
	seed(func() { w.str(tagErrorCode, "jwt_expired"); w.str(tagMessage, "expired") })
	seed(func() { w.bool(tagAuthority, true); w.int(tagMode, 1); w.bytes(tagExtra, []byte(`{"a":1}`)) })
	seed(func() { w.int(tagClientMode, 2); w.int(tagLifetime, 5000); w.bytes(tagExtra, []byte(`null`)) })
	seed(func() { w.bytes(tagBody, []byte(`{"text":"hi"}`)); w.int(tagMode, 7) })
	seed(func() { w.int(tagLifetime, -1<<63); w.bytes(tagExtra, []byte(`[1]`)) })
	f.Add(uint8(verdictDeny), []byte{20, 0, 255, 255, 255, 255, 'x'})
	f.Add(uint8(verdictDeny), []byte{18, 0, 3, 0, 0, 0, 1, 2, 3})

	h := &Host{cfg: Config{}.withDefaults()}
	f.Fuzz(func(t *testing.T, verdict uint8, rec []byte) {
		a := answer{verdict: verdict}
		if err := a.decode(rec); err != nil {
			return
		}
		if out, err := h.applyJoin(JoinOutcome{Allowed: true}, &a); err == nil {
			checkMember(t, out.Mode, out.Extra, h.cfg.MaxExtraBytes)
			if out.Authority && out.Mode != 2 {
				t.Fatalf("an authority with mode %d", out.Mode)
			}
			if !out.Allowed && !validCode.MatchString(out.ErrorCode) {
				t.Fatalf("a refusal with errorcode %q", out.ErrorCode)
			}
		}
		if out, err := h.applyToken(TokenOutcome{Allowed: true, Lifetime: time.Second}, &a); err == nil {
			checkMember(t, out.ClientMode, out.Extra, h.cfg.MaxExtraBytes)
			if out.Allowed && (out.Lifetime <= 0 || out.Lifetime > h.cfg.MaxLifetime) {
				t.Fatalf("a token lifetime of %v", out.Lifetime)
			}
			if len(out.Error) > 1024 {
				t.Fatalf("a refusal text of %d bytes", len(out.Error))
			}
		}
	})
}

func checkMember(t *testing.T, mode int, extra []byte, maxExtra int) {
	t.Helper()
	if mode < 0 || mode > 2 {
		t.Fatalf("mode %d", mode)
	}
	if extra == nil {
		return
	}
	var m map[string]any
	if len(extra) > maxExtra || !utf8.Valid(extra) || json.Unmarshal(extra, &m) != nil {
		t.Fatalf("extra %q (%d bytes) passed the checks", extra, len(extra))
	}
}
