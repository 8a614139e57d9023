package token_test

import (
	"context"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/token"
)

// BenchmarkMintClaim mints a token, claims it as a JOIN does and releases
// it as a LEAVE does. The clock moves 1 s per token, so released tokens
// expire and the store stays at its steady-state size.
func BenchmarkMintClaim(b *testing.B) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := token.NewMemory(&token.MemoryOptions{Now: func() time.Time { return now }})
	ctx := context.Background()
	g := token.Grant{Channel: "bench", Protocol: "bench", Extra: []byte(`{"user":"u1"}`)}
	b.ReportAllocs()
	var holder int64
	for b.Loop() {
		tok, _, err := m.Mint(ctx, g, 30*time.Second)
		if err != nil {
			b.Fatal(err)
		}
		holder++
		if _, err := m.Claim(ctx, tok, "bench", "bench", holder); err != nil {
			b.Fatal(err)
		}
		if err := m.Release(ctx, tok, holder, g); err != nil {
			b.Fatal(err)
		}
		now = now.Add(time.Second)
	}
	if n := m.Len(); n > 2048 {
		b.Fatalf("store holds %d tokens: expired ones are not swept", n)
	}
}
