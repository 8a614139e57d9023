package plugin

import (
	"errors"
	"testing"
)

// FuzzAnswerDecode feeds arbitrary output records to the plugin answer
// decoder and the checks applied to an answer (a plugin's output is
// untrusted): they never panic, and every refusal is ErrBadOutput, which
// the hook's failure policy handles like any other plugin failure.
func FuzzAnswerDecode(f *testing.F) {
	var w recordWriter
	w.str(tagErrorCode, "access_denied")
	w.str(tagMessage, "no")
	f.Add(uint8(verdictDeny), append([]byte(nil), w.b...))
	w.reset()
	w.bool(tagAuthority, true)
	w.int(tagMode, 2)
	w.int(tagLifetime, 60_000)
	w.bytes(tagExtra, []byte(`{"a":1}`))
	f.Add(uint8(verdictAllow), append([]byte(nil), w.b...))
	w.reset()
	w.bytes(tagBody, []byte(`{"cmd":"X"}`))
	f.Add(uint8(verdictAllow), append([]byte(nil), w.b...))
	f.Add(uint8(verdictDeny), []byte{1, 0, 255, 255, 255, 255})
	f.Add(uint8(9), []byte{})
	f.Fuzz(func(t *testing.T, verdict uint8, rec []byte) {
		a := answer{verdict: verdict}
		if err := a.decode(rec); err != nil {
			if !errors.Is(err, ErrBadOutput) {
				t.Fatalf("decode: %v, want ErrBadOutput", err)
			}
			return
		}
		if _, err := applyJoin(JoinOutcome{}, &a); err != nil && !errors.Is(err, ErrBadOutput) {
			t.Fatalf("applyJoin: %v, want ErrBadOutput", err)
		}
		if _, err := applyToken(TokenOutcome{}, &a); err != nil && !errors.Is(err, ErrBadOutput) {
			t.Fatalf("applyToken: %v, want ErrBadOutput", err)
		}
		if _, _, err := checkDeny(&a); err != nil && !errors.Is(err, ErrBadOutput) {
			t.Fatalf("checkDeny: %v, want ErrBadOutput", err)
		}
	})
}
