package relay_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/relay-project/relay/relay"
)

// TestFrameLengthEncodings checks that deliveries of every WebSocket length
// encoding (7-bit, 16-bit, 64-bit) arrive whole and byte for byte, text and
// binary, several to a batch: the relay frames data messages itself.
func TestFrameLengthEncodings(t *testing.T) {
	r := startRelay(t, func(c *relay.Config) { c.MaxMessageBytes = 1 << 20 })
	a := authority(t, r)
	me := join(t, a, "frames", "p", "")
	prefix := fmt.Sprintf(`{"channel":%v,"success":true,"from":%v,"cmd":"S","p":"`, me["channel"], me["id"])
	sizes := []int{100, 125, 126, 127, 65535, 65536, 70000} // ids take 15 digits of the prefix
	for _, binary := range []bool{false, true} {
		var want []string
		for _, size := range sizes {
			pad := strings.Repeat("x", size-len(prefix)-2)
			req := fmt.Sprintf(`{"cmd":"S","channel":%v,"to":-1,"p":"%s"}`, me["channel"], pad)
			if binary {
				a.SendBinary(req)
			} else {
				a.Send(req)
			}
			want = append(want, prefix+pad+`"}`)
		}
		for i, w := range want {
			f := a.Next()
			if f.Binary != binary || string(f.Data) != w {
				t.Errorf("size %d binary=%v: got binary=%v, %d bytes", sizes[i], binary, f.Binary, len(f.Data))
			}
		}
	}
}
