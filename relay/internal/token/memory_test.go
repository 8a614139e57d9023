package token_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/token"
)

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func TestExactExpiryAndRejoin(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1000, 0)}
	s := token.NewMemory(&token.MemoryOptions{Now: clk.Now, Rejoin: 10 * time.Second})
	g := token.Grant{Channel: "c", Protocol: "p", Mode: 1}
	tok, exp, err := s.Mint(ctx, g, 30*time.Second)
	if err != nil || !exp.Equal(clk.t.Add(30*time.Second)) {
		t.Fatalf("Mint: %v %v", exp, err)
	}
	clk.t = exp // the deadline itself is too late
	if _, err := s.Claim(ctx, tok, "c", "p", 1); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("claim at the deadline: %v", err)
	}
	tok, exp, _ = s.Mint(ctx, g, 30*time.Second)
	clk.t = exp.Add(-time.Nanosecond)
	if _, err := s.Claim(ctx, tok, "c", "p", 1); err != nil {
		t.Fatalf("claim a nanosecond early: %v", err)
	}
	if _, err := s.Claim(ctx, tok, "c", "p", 1); !errors.Is(err, token.ErrInUse) {
		t.Fatalf("the holder claims again: %v (the relay does not ask; a held token is refused to all)", err)
	}
	if _, err := s.Claim(ctx, tok, "c", "p", 2); !errors.Is(err, token.ErrInUse) {
		t.Fatalf("claim of a held token: %v", err)
	}
	clk.t = clk.t.Add(24 * time.Hour) // held: no expiry
	s.Release(ctx, tok, 2, g)         // not the holder: no effect
	if _, err := s.Claim(ctx, tok, "c", "p", 2); !errors.Is(err, token.ErrInUse) {
		t.Fatalf("release by a non-holder freed the token: %v", err)
	}
	s.Release(ctx, tok, 1, g)
	clk.t = clk.t.Add(10*time.Second - time.Nanosecond)
	if _, err := s.Claim(ctx, tok, "c", "p", 2); err != nil {
		t.Fatalf("rejoin within the window: %v", err)
	}
	s.Release(ctx, tok, 2, g)
	clk.t = clk.t.Add(10 * time.Second)
	if _, err := s.Claim(ctx, tok, "c", "p", 3); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("claim after the rejoin window: %v", err)
	}
}

func TestWrongChannelDoesNotConsume(t *testing.T) {
	ctx := context.Background()
	s := token.NewMemory(nil)
	tok, _, _ := s.Mint(ctx, token.Grant{Channel: "c", Protocol: "p"}, time.Minute)
	for _, cp := range [][2]string{{"c", "q"}, {"d", "p"}} {
		if _, err := s.Claim(ctx, tok, cp[0], cp[1], 1); !errors.Is(err, token.ErrWrongChannel) {
			t.Fatalf("claim for %v: %v", cp, err)
		}
	}
	if _, err := s.Claim(ctx, "nope", "c", "p", 1); !errors.Is(err, token.ErrUnknown) {
		t.Fatalf("unknown token: %v", err)
	}
	if _, err := s.Claim(ctx, tok, "c", "p", 2); err != nil {
		t.Fatalf("the right channel after wrong ones: %v", err)
	}
}

func TestSweepReclaimsExpired(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(0, 0)}
	s := token.NewMemory(&token.MemoryOptions{Now: clk.Now})
	for range 1000 {
		s.Mint(ctx, token.Grant{Channel: "c", Protocol: "p"}, time.Second)
	}
	clk.t = clk.t.Add(2 * time.Second)
	for range 1100 {
		s.Mint(ctx, token.Grant{Channel: "c", Protocol: "p"}, time.Hour)
	}
	if n := s.Len(); n > 1100 {
		t.Fatalf("%d tokens kept; the 1000 expired ones were not swept", n)
	}
}

func TestConcurrentClaimsOneWinner(t *testing.T) {
	ctx := context.Background()
	s := token.NewMemory(nil)
	tok, _, _ := s.Mint(ctx, token.Grant{Channel: "c", Protocol: "p"}, time.Minute)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Claim(ctx, tok, "c", "p", int64(i+1)); err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d clients claimed one token", wins)
	}
}

// TestReleaseCarriesCurrentState: a token re-armed on leave gives the next
// claim the member's state at the time it left, bound to its channel; a
// release by someone else changes nothing.
func TestReleaseCarriesCurrentState(t *testing.T) {
	ctx := context.Background()
	s := token.NewMemory(nil)
	tok, _, _ := s.Mint(ctx, token.Grant{Channel: "c", Protocol: "p", Mode: 0, Extra: []byte(`{"n":1}`)}, time.Minute)
	if _, err := s.Claim(ctx, tok, "c", "p", 1); err != nil {
		t.Fatal(err)
	}
	s.Release(ctx, tok, 2, token.Grant{Channel: "c", Protocol: "p", Mode: 2, Extra: []byte(`{"x":0}`)}) // not the holder
	if _, err := s.Claim(ctx, tok, "c", "p", 3); !errors.Is(err, token.ErrInUse) {
		t.Fatalf("a release by someone else freed the token: %v", err)
	}
	now := token.Grant{Channel: "c", Protocol: "p", Mode: 1, Extra: []byte(`{"n":2}`), MakeAuth: true}
	s.Release(ctx, tok, 1, now)
	if _, err := s.Claim(ctx, tok, "other", "q", 3); !errors.Is(err, token.ErrWrongChannel) {
		t.Fatalf("claim of the re-armed token for another channel: %v", err)
	}
	g, err := s.Claim(ctx, tok, "c", "p", 3)
	if err != nil {
		t.Fatal(err)
	}
	if g.Channel != "c" || g.Protocol != "p" || g.Mode != 1 || string(g.Extra) != `{"n":2}` || !g.MakeAuth {
		t.Fatalf("rejoin got %+v, want the state at release", g)
	}
}

// TestCapCountAndBytes: past MaxCount free tokens or MaxBytes, Mint fails
// with ErrFull, after dropping expired tokens, and works again once there
// is room: a claim makes room (a joined member's token is its own), and a
// release may go past the cap (a member that leaves can always rejoin).
func TestCapCountAndBytes(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(0, 0)}
	s := token.NewMemory(&token.MemoryOptions{Now: clk.Now, MaxCount: 3})
	g := token.Grant{Channel: "c", Protocol: "p"}
	var toks []string
	for range 3 {
		tok, _, err := s.Mint(ctx, g, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	if _, _, err := s.Mint(ctx, g, time.Second); !errors.Is(err, token.ErrFull) {
		t.Fatalf("4th token: %v, want ErrFull", err)
	}
	if _, err := s.Claim(ctx, toks[0], "c", "p", 1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Mint(ctx, g, time.Second); err != nil {
		t.Fatalf("a token after one was claimed: %v", err)
	}
	s.Release(ctx, toks[0], 1, g) // four free now: the rejoin is not refused
	if _, err := s.Claim(ctx, toks[0], "c", "p", 2); err != nil {
		t.Fatalf("rejoin past the cap: %v", err)
	}
	clk.t = clk.t.Add(2 * time.Second) // all three expire
	if _, _, err := s.Mint(ctx, g, time.Second); err != nil {
		t.Fatalf("after expiry: %v", err)
	}

	big := token.Grant{Channel: "c", Protocol: "p", Extra: make([]byte, 1000)}
	s = token.NewMemory(&token.MemoryOptions{Now: clk.Now, MaxBytes: 3 * token.EntryBytes(big)})
	for range 3 {
		if _, _, err := s.Mint(ctx, big, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Mint(ctx, big, time.Second); !errors.Is(err, token.ErrFull) {
		t.Fatalf("past MaxBytes: %v, want ErrFull", err)
	}
	if s.Bytes() != 3*token.EntryBytes(big) {
		t.Fatalf("Bytes = %d", s.Bytes())
	}
}

// TestExpiredTokensFreedOnTime: expired tokens are dropped on a timer,
// without further mints (they used to wait for the next 1,024), and the
// memory of their extras goes back to the heap.
func TestExpiredTokensFreedOnTime(t *testing.T) {
	ctx := context.Background()
	s := token.NewMemory(nil)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n, extra = 1000, 32 << 10
	for range n {
		g := token.Grant{Channel: "c", Protocol: "p", Extra: make([]byte, extra)}
		if _, _, err := s.Mint(ctx, g, 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	var full runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&full)
	start := time.Now()
	for s.Len() > 0 {
		if time.Since(start) > 5*time.Second {
			t.Fatalf("%d expired tokens still held after %v", s.Len(), time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("heap: %d MB before, %d MB with %d tokens, %d MB %v after they expired",
		before.HeapAlloc>>20, full.HeapAlloc>>20, n, after.HeapAlloc>>20, time.Since(start).Round(time.Millisecond))
	if after.HeapAlloc > before.HeapAlloc+4<<20 {
		t.Fatalf("heap %d MB after expiry, %d MB before", after.HeapAlloc>>20, before.HeapAlloc>>20)
	}
	if s.Bytes() != 0 {
		t.Fatalf("Bytes = %d with no tokens", s.Bytes())
	}
}
