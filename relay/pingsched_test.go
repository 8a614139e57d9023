package relay_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/protocol"
)

// TestEveryConnectionIsPingedEachInterval: with one ping schedule for the
// server, each of many connections still gets a ping every interval (give
// or take the schedule's tick), again after it answered, while connections
// that end leave the schedule without disturbing the others.
func TestEveryConnectionIsPingedEachInterval(t *testing.T) {
	bothReaders(t, func(t *testing.T, parking bool) {
		// Long enough that the test answers every ping within it under
		// -race on a loaded machine, reading the connections in turn.
		const interval = time.Second
		r := parkingRelay(t, parking, func(c *relay.Config) { c.PingInterval = interval })
		const k = 200
		conns := make([]*rawWS, k)
		for i := range conns {
			conns[i] = dialRaw(t, r)
			conns[i].write(clientFrame(1, fmt.Sprintf(`{"cmd":"JOIN","channel":"c%d","protocol":"p"}`, i)))
		}
		for _, c := range conns {
			c.joined()
		}
		// Every other connection leaves at once; the rest must go on being pinged.
		for i := 0; i < k; i += 2 {
			conns[i].nc.Close()
		}
		for round := range 2 {
			start := time.Now()
			for i := 1; i < k; i += 2 {
				c := conns[i]
				op, p := c.next()
				if op != 9 {
					t.Fatalf("frame op %d %q, want a ping", op, p)
				}
				c.write(clientFrame(10, p))
			}
			// Each waited at most an interval plus a tick since its last
			// ping was answered; reading them in turn adds little.
			if d := time.Since(start); d > 2*interval+schedulingSlack {
				t.Fatalf("round %d: pings of %d connections took %v, interval %v", round, k/2, d, interval)
			}
		}
		// The ones that left are gone; none was dropped for a ping timeout.
		waitFor(t, func() bool { return r.Clients() == k/2 })
		if n := r.Stats().Closed[protocol.ClosePingTimeout]; n != 0 {
			t.Fatalf("%d connections closed for a ping timeout", n)
		}
	})
}
