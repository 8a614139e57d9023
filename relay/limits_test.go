package relay_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/relaytest"
)

// manyKeys is one message of n distinct short keys, under 64 KB for
// n = 8,000: what an attacker sends to make the decoder work.
func manyKeys(n int) string {
	const digits = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b strings.Builder
	b.WriteString(`{"cmd":"B","channel":1`)
	for i := range n {
		b.WriteString(`,"`)
		for k := i; ; k /= len(digits) {
			b.WriteByte(digits[k%len(digits)])
			if k < len(digits) {
				break
			}
		}
		b.WriteString(`":0`)
	}
	b.WriteString("}")
	return b.String()
}

// TestManyKeysAnsweredFast: a message with 8,000 distinct keys is answered
// in about the time of any other message (it cost ~46 ms of CPU each when
// duplicate keys were found by scanning), and a healthy member beside two
// connections sending such messages back to back sees no gap in its
// stream.
func TestManyKeysAnsweredFast(t *testing.T) {
	r := startRelay(t, nil)
	a := authority(t, r)
	join(t, a, "room", "chat", "")
	g := guest(t, r)
	join(t, g, "room", "chat", grant(t, a, "room", "chat", 0, `{}`, false))
	a.Next() // g's JOINED

	heavy := manyKeys(8000)
	if len(heavy) >= 65536 {
		t.Fatalf("message is %d bytes, over the default limit", len(heavy))
	}
	const attackers, each = 2, 10
	var wg sync.WaitGroup
	took := make([]time.Duration, attackers)
	stop := make(chan struct{})
	for i := range attackers {
		x := guest(t, r)
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			for range each {
				x.Send(heavy)
				if m := x.NextMap(); m["errorcode"] != "invalid_channel" {
					t.Errorf("heavy message answered %v", m)
					return
				}
			}
			took[i] = time.Since(start)
		}()
	}
	go func() { wg.Wait(); close(stop) }()

	// The healthy stream: a sends every 2 ms, g measures the gaps.
	var maxGap time.Duration
	last := time.Now()
	sent := 0
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		case <-time.After(2 * time.Millisecond):
		}
		sent++
		a.Send(fmt.Sprintf(`{"cmd":"S","channel":1,"to":-1,"n":%d}`, sent))
		if got := g.NextMap(); fmt.Sprint(got["n"]) != fmt.Sprint(sent) {
			t.Fatalf("healthy member got %v, want n=%d", got, sent)
		}
		now := time.Now()
		maxGap = max(maxGap, now.Sub(last))
		last = now
	}
	for i, d := range took {
		t.Logf("attacker %d: %d messages of %d bytes answered in %v", i, each, len(heavy), d)
		// Scanning cost 46 ms per message on this machine; the bound is
		// generous for the race detector and a shared machine.
		if d > 250*time.Millisecond {
			t.Errorf("attacker %d: %d heavy messages took %v, want < 250ms", i, each, d)
		}
	}
	t.Logf("healthy member: %d messages, largest gap %v", sent, maxGap)
	if maxGap > 100*time.Millisecond {
		t.Errorf("healthy member saw a %v gap", maxGap)
	}
}

var _ = relaytest.Config
