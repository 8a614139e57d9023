package relay_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/relaytest"
	"github.com/relay-project/relay/relay/protocol"
)

func httpGet(t *testing.T, url string) (int, string) { return httpGetAll(t, url) }

func httpGetAll(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

func TestHealthAndShutdown(t *testing.T) {
	r := startRelay(t, nil)
	base := "http://" + r.Addr
	if code, _ := httpGet(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, _ := httpGet(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d", code)
	}
	if code, _ := httpGet(t, base+"/"); code != http.StatusUpgradeRequired {
		t.Fatalf("plain GET / = %d, want 426", code)
	}

	a := authority(t, r)
	aid := id(join(t, a, "c", "p", ""))
	g := authority(t, r)
	gid := id(join(t, g, "c", "p", ""))
	a.Next()
	// Queue a burst for g, then shut down at once: g must receive all of it
	// before the 1012 close.
	const burst = 200
	for i := range burst {
		a.Send(fmt.Sprintf(`{"cmd":"N","channel":1,"to":%s,"i":%d}`, gid, i))
	}
	a.Send(`{"cmd":"N","channel":1,"to":` + aid + `,"last":true}`)
	a.Next() // everything before it has been queued for g

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- r.Server.Shutdown(ctx)
	}()
	for i := range burst {
		f := g.Next()
		if !strings.Contains(string(f.Data), fmt.Sprintf(`"i":%d}`, i)) {
			t.Fatalf("message %d: got %s", i, f.Data)
		}
	}
	if s := relaytest.CloseStatus(g.Closed(5 * time.Second)); s != protocol.StatusServiceRestart {
		t.Fatalf("g closed with %d, want 1012", s)
	}
	if s := relaytest.CloseStatus(a.Closed(5 * time.Second)); s != protocol.StatusServiceRestart {
		t.Fatalf("a closed with %d, want 1012", s)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if code, body := httpGet(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while draining: %d %s", code, body)
	}
	if _, resp, err := relaytest.TryDial(t, r.URL, nil); err == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a new WebSocket while draining: %v", err)
	}
}

func TestKeepalive(t *testing.T) {
	// Short enough for a quick test, long enough that a live client
	// answers in time on a loaded CI machine.
	r := startRelay(t, func(c *relay.Config) { c.PingInterval = 250 * time.Millisecond })
	a := authority(t, r)
	aid := id(join(t, a, "c", "p", ""))
	// A client that never reads never answers pings.
	dead := relaytest.Dial(t, r.URL, &relaytest.DialOptions{Local: authAddr, NoRead: true})
	dead.Send(`{"cmd":"JOIN","channel":"c","protocol":"p"}`)
	deadID := id(a.NextMap())
	// The live client answers (its library does while it reads) and stays;
	// the dead one is dropped and leaves the channel.
	a.Expect(`{"channel":1,"success":true,"cmd":"LEFT","from":0,"id":` + deadID + `}`)
	// Counted under its named reason (just after the LEFT went out).
	waitFor(t, func() bool { return r.Stats().Closed[protocol.ClosePingTimeout] == 1 })
	if got := r.Stats().Closed; got[protocol.ClosePingTimeout] != 1 || r.Clients() != 1 {
		t.Fatalf("closes %v, %d clients; want one ping timeout and one client", got, r.Clients())
	}
	time.Sleep(3 * 250 * time.Millisecond) // three more pings the live client answers
	a.Send(`{"cmd":"X","channel":1,"to":-1}`)
	a.Expect(`{"channel":1,"success":true,"from":` + aid + `,"cmd":"X"}`)
}

// TestHammer has many clients join, grant, broadcast, leave and disconnect
// at once; afterwards no channel, client or goroutine is left.
func TestHammer(t *testing.T) {
	r := startRelay(t, nil)
	before := runtime.NumGoroutine()
	const workers = 24
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			a := authority(t, r)
			a.Discard()
			g := guest(t, r)
			g.Discard()
			for i := range 40 {
				name := fmt.Sprintf("c%d", rng.IntN(5))
				switch rng.IntN(5) {
				case 0, 1:
					a.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":%q,"protocol":"p"}`, name))
				case 2:
					a.Send(fmt.Sprintf(`{"cmd":"GRANT","channel":%q,"protocol":"p","clientmode":2,"extra":{}}`, name))
				case 3:
					a.Send(fmt.Sprintf(`{"cmd":"MSG","channel":%d,"to":-1,"i":%d}`, 1+rng.IntN(10), i))
				case 4:
					a.Send(fmt.Sprintf(`{"cmd":"LEAVE","channel":%d}`, 1+rng.IntN(10)))
				}
				g.Send(fmt.Sprintf(`{"cmd":"JOIN","channel":%q,"protocol":"p","token":"nope"}`, name))
			}
			if w%2 == 0 {
				a.Conn().CloseNow()
			} else {
				a.Conn().Close(1000, "bye")
			}
			g.Conn().CloseNow()
		}()
	}
	wg.Wait()
	waitFor(t, func() bool { return clients(r) == 0 && r.Channels() == 0 })
	waitFor(t, func() bool { return runtime.NumGoroutine() <= before+2 })
}
