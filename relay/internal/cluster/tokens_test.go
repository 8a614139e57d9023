package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relay-project/relay/relay/internal/cluster"
	"github.com/relay-project/relay/relay/internal/cluster/natstest"
	"github.com/relay-project/relay/relay/internal/token"
)

// Of two instances claiming one token at the same moment, exactly one
// wins, round after round; the loser is told the token is in use.
func TestTokenClaimRaceHasOneWinner(t *testing.T) {
	srv := natstest.Start(t)
	a, b := startNode(t, testConfig(srv)), startNode(t, testConfig(srv))
	ctx := context.Background()
	const rounds = 200
	for i := range rounds {
		minter := a
		if i%2 == 1 {
			minter = b
		}
		tok, _, err := minter.Tokens().Mint(ctx, token.Grant{Channel: "c", Protocol: "p", Mode: 1}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for j, n := range []*cluster.Node{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, err := n.Tokens().Claim(ctx, tok, "c", "p", int64(1000*i+j+1))
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, token.ErrInUse):
					t.Errorf("round %d: the loser got %v, want ErrInUse", i, err)
				}
			}()
		}
		close(start)
		wg.Wait()
		if w := wins.Load(); w != 1 {
			t.Fatalf("round %d: %d winners", i, w)
		}
	}
}

// A token minted on one instance is claimed on another, refused for
// another channel without being consumed, re-armed on release with the
// member's state at the end, claimable on a third instance inside the
// rejoin window, and expired exactly at its deadline.
func TestTokenAcrossInstances(t *testing.T) {
	srv := natstest.Start(t)
	var mu sync.Mutex
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	cfg := testConfig(srv)
	cfg.Now, cfg.Rejoin = clock, 10*time.Second
	a, b, c := startNode(t, cfg), startNode(t, cfg), startNode(t, cfg)
	ctx := context.Background()

	tok, exp, err := a.Tokens().Mint(ctx, token.Grant{Channel: "c", Protocol: "p", Mode: 1, Extra: []byte(`{"u":1}`)}, 30*time.Second)
	if err != nil || !exp.Equal(clock().Add(30*time.Second)) {
		t.Fatalf("Mint: %v %v", exp, err)
	}
	if _, err := b.Tokens().Claim(ctx, tok, "other", "p", 7); !errors.Is(err, token.ErrWrongChannel) {
		t.Fatalf("claim for another channel: %v", err)
	}
	g, err := b.Tokens().Claim(ctx, tok, "c", "p", 7)
	if err != nil || g.Mode != 1 || string(g.Extra) != `{"u":1}` {
		t.Fatalf("claim on another instance: %+v %v", g, err)
	}
	if _, err := b.Tokens().Claim(ctx, tok, "c", "p", 7); err != nil {
		t.Fatalf("the holder claims again: %v", err)
	}
	if _, err := c.Tokens().Claim(ctx, tok, "c", "p", 8); !errors.Is(err, token.ErrInUse) {
		t.Fatalf("claim of a held token elsewhere: %v", err)
	}
	advance(time.Hour) // held: no expiry
	if err := c.Tokens().Release(ctx, tok, 8, token.Grant{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tokens().Claim(ctx, tok, "c", "p", 8); !errors.Is(err, token.ErrInUse) {
		t.Fatalf("a release by a non-holder freed the token: %v", err)
	}
	if err := b.Tokens().Release(ctx, tok, 7, token.Grant{Mode: 2, Extra: []byte(`{"u":2}`)}); err != nil {
		t.Fatal(err)
	}
	advance(10*time.Second - time.Nanosecond)
	g, err = c.Tokens().Claim(ctx, tok, "c", "p", 8)
	if err != nil || g.Mode != 2 || string(g.Extra) != `{"u":2}` {
		t.Fatalf("rejoin on a third instance within the window: %+v %v", g, err)
	}
	if err := c.Tokens().Release(ctx, tok, 8, g); err != nil {
		t.Fatal(err)
	}
	advance(10 * time.Second)
	if _, err := a.Tokens().Claim(ctx, tok, "c", "p", 9); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("claim after the rejoin window: %v", err)
	}

	tok, exp, _ = a.Tokens().Mint(ctx, token.Grant{Channel: "c", Protocol: "p"}, 30*time.Second)
	advance(exp.Sub(clock()))
	if _, err := b.Tokens().Claim(ctx, tok, "c", "p", 9); !errors.Is(err, token.ErrExpired) {
		t.Fatalf("claim at the deadline: %v", err)
	}
	if _, err := b.Tokens().Claim(ctx, "nope", "c", "p", 9); !errors.Is(err, token.ErrUnknown) {
		t.Fatalf("claim of an unknown token: %v", err)
	}
}

// A token held by a member of an instance that died without a goodbye is
// in use until the instance's lease ends, then claimable elsewhere within
// the rejoin window.
func TestTokenOfADeadInstanceIsUsableAgain(t *testing.T) {
	srv := natstest.Start(t)
	cfg := testConfig(srv)
	lost := make(chan uint64, 2)
	cfg.OnNodeLost = func(id uint64) { lost <- id }
	a := startNode(t, cfg)
	b := startNode(t, testConfig(srv))
	ctx := context.Background()
	tok, _, _ := a.Tokens().Mint(ctx, token.Grant{Channel: "c", Protocol: "p", Mode: 2}, time.Minute)
	if _, err := b.Tokens().Claim(ctx, tok, "c", "p", 5); err != nil {
		t.Fatal(err)
	}
	b.Crash()
	if _, err := a.Tokens().Claim(ctx, tok, "c", "p", 6); !errors.Is(err, token.ErrInUse) {
		t.Fatalf("claim while the dead holder's lease lasts: %v", err)
	}
	select {
	case <-lost:
	case <-time.After(cfg.NodeTTL + 5*time.Second):
		t.Fatal("the dead instance was never reported")
	}
	if g, err := a.Tokens().Claim(ctx, tok, "c", "p", 6); err != nil || g.Mode != 2 {
		t.Fatalf("claim after the holder's instance died: %+v %v", g, err)
	}
}

// With NATS unreachable, a claim fails as unavailable, not as a refusal,
// and does not hang past its context.
func TestTokenStoreDownIsNotARefusal(t *testing.T) {
	srv := natstest.Start(t)
	a := startNode(t, testConfig(srv))
	tok, _, _ := a.Tokens().Mint(context.Background(), token.Grant{Channel: "c", Protocol: "p"}, time.Minute)
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, err := a.Tokens().Claim(ctx, tok, "c", "p", 1)
	if err == nil || token.Refused(err) || !errors.Is(err, cluster.ErrUnavailable) {
		t.Fatalf("claim with NATS down: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("claim with NATS down took %s", d)
	}
}

// A token whose holder's instance died, and that nobody claims again, does
// not stay in the bucket for ever: the survivor rewrites it as released at
// the lease's end, with a key TTL, like any token released by its member.
func TestTokenOfADeadInstanceIsCollected(t *testing.T) {
	srv := natstest.Start(t)
	a := startNode(t, testConfig(srv))
	b := startNode(t, testConfig(srv))
	ctx := context.Background()
	held, _, _ := a.Tokens().Mint(ctx, token.Grant{Channel: "c", Protocol: "p", Mode: 2}, time.Minute)
	if _, err := b.Tokens().Claim(ctx, held, "c", "p", 5); err != nil {
		t.Fatal(err)
	}
	other, _, _ := a.Tokens().Mint(ctx, token.Grant{Channel: "c", Protocol: "p", Mode: 2}, time.Minute)
	if _, err := a.Tokens().Claim(ctx, other, "c", "p", 6); err != nil {
		t.Fatal(err)
	}

	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	stream, err := js.Stream(ctx, "KV_t_tokens")
	if err != nil {
		t.Fatal(err)
	}
	record := func(tok string) (holder any, ttl string) {
		m, err := stream.GetLastMsgForSubject(ctx, "$KV.t_tokens."+tok)
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		json.Unmarshal(m.Data, &rec)
		return rec["h"], m.Header.Get("Nats-TTL")
	}
	if h, ttl := record(held); h == nil || ttl != "" {
		t.Fatalf("held token before the crash: holder %v, TTL %q; want a holder and no TTL", h, ttl)
	}

	b.Crash()
	waitFor(t, testConfig(srv).NodeTTL+10*time.Second, "the dead instance's token rewritten as released", func() bool {
		h, ttl := record(held)
		return h == nil && ttl != ""
	})
	if h, ttl := record(other); h == nil || ttl != "" {
		t.Fatalf("a live instance's member's token: holder %v, TTL %q; want it untouched", h, ttl)
	}
	if _, err := a.Tokens().Claim(ctx, held, "c", "p", 7); err != nil {
		t.Fatalf("claim inside the rejoin window after the collection: %v", err)
	}
}
