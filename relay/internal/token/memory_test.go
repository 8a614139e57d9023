package token_test

import (
	"context"
	"errors"
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
	if _, err := s.Claim(ctx, tok, "c", "p", 1); err != nil {
		t.Fatalf("the holder claims again: %v", err)
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
