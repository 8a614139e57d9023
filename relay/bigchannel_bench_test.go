package relay_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay/internal/relaytest"
)

// BenchmarkJoinBigChannel measures the largest channel that stays
// joinable: a joiner enters a channel of n guests with 1 KB extras, takes
// its JOINED (every member with its extra) and leaves, once per op. The
// authority's JOIN and LEAVE are also told to all n members; the guest
// (mode 2, which sees everyone) gets the same JOINED and tells no one. A
// size at which the joiner is disconnected instead is reported as a skip
// ("not joinable"). It holds 2n descriptors (both ends on loopback), so n
// stops at 8,000 under this machine's 20,000-file limit.
//
//	go test -run '^$' -bench BenchmarkJoinBigChannel -benchtime 5x ./relay/
func BenchmarkJoinBigChannel(b *testing.B) {
	for _, n := range []int{900, 1000, 4000, 8000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			cfg := relaytest.Config(b)
			cfg.AuthorityIPs = []string{authAddr}
			cfg.TokenTTL = 10 * time.Minute // filling 8,000 members outlasts 30 s on a busy machine
			r := relaytest.Start(b, cfg, "")
			a := relaytest.Dial(b, r.URL, &relaytest.DialOptions{Local: authAddr})
			fillChannel(b, r, a, "big", "p", n, 1024)
			a.Send(`{"cmd":"GRANT","channel":"big","protocol":"p","clientmode":2,"extra":{}}`)
			tok, _ := a.NextMap()["token"].(string)
			for _, joiner := range []struct{ name, local, tok string }{
				{"authority", authAddr, ""},
				{"guest", guestAddr, tok},
			} {
				b.Run("joiner="+joiner.name, func(b *testing.B) {
					j := relaytest.Dial(b, r.URL, &relaytest.DialOptions{Local: joiner.local, NoRead: true})
					var joined int
					for range b.N {
						j.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":"big","protocol":"p","token":%q}`, joiner.tok))
						f, err := nextFrame(j, 10*time.Second)
						if err != nil || !strings.Contains(string(f), `"channelname"`) {
							b.Skipf("not joinable: %d members, the joiner got %.80q, %v", n, f, err)
						}
						joined = len(f)
						// JOINED starts {"channel":N,: no need to decode megabytes.
						num, _, _ := strings.Cut(strings.TrimPrefix(string(f[:min(len(f), 40)]), `{"channel":`), ",")
						j.Send(`{"cmd":"LEAVE","channel":` + num + `}`)
						if _, err := nextFrame(j, 10*time.Second); err != nil {
							b.Skipf("not joinable: %d members, the joiner was closed after JOINED: %v", n, err)
						}
					}
					b.ReportMetric(float64(joined), "JOINED-bytes")
				})
			}
		})
	}
}

// nextFrame reads c's next frame (c dialled with NoRead), without failing
// the benchmark when the connection ends.
func nextFrame(c *relaytest.Client, timeout time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, data, err := c.Conn().Read(ctx)
	return data, err
}

// fillChannel joins n guests (mode 0, each with an extra of extraBytes)
// to (name, proto) over their own connections from guestAddr, which read
// and discard everything. Tokens come from authority a.
func fillChannel(tb testing.TB, r *relaytest.Relay, a *relaytest.Client, name, proto string, n, extraBytes int) {
	tb.Helper()
	extra := fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", extraBytes-10))
	toks := make([]string, n)
	for i := range toks {
		a.Send(fmt.Sprintf(`{"cmd":"GRANT","channel":%q,"protocol":%q,"clientmode":0,"extra":%s}`, name, proto, extra))
		m := a.NextMap()
		tok, _ := m["token"].(string)
		if tok == "" {
			tb.Fatalf("GRANT: %v", m)
		}
		toks[i] = tok
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(guestAddr)}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	errs := make(chan error, n)
	var wg sync.WaitGroup
	work := make(chan string)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tok := range work {
				errs <- joinQuietly(r.URL, hc, name, proto, tok, tb)
			}
		}()
	}
	for _, tok := range toks {
		work <- tok
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// joinQuietly connects, joins with tok and then discards every frame until
// the test ends.
func joinQuietly(url string, hc *http.Client, name, proto, tok string, tb testing.TB) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	ws.SetReadLimit(-1)
	tb.Cleanup(func() { ws.CloseNow() })
	req := fmt.Sprintf(`{"cmd":"JOIN","channel":%q,"protocol":%q,"token":%q}`, name, proto, tok)
	if err := ws.Write(ctx, websocket.MessageText, []byte(req)); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), `"cmd":"JOINED"`) {
		return fmt.Errorf("join: %s %v", data, err)
	}
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	return nil
}
