package retain

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLatestPerCmdAndExpiry(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(1000, 0)}
	s := New(&Options{Now: clk.Now})
	if _, err := s.Put(ctx, "r1", "p", "progress", []byte(`"pct":10`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	exp, err := s.Put(ctx, "r1", "p", "ready", []byte(`"url":"/a"`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(time.Unix(1006, 0)) {
		t.Fatalf("expires %v", exp)
	}
	clk.Advance(time.Second)
	if _, err := s.Put(ctx, "r1", "p", "progress", []byte(`"pct":90`), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	got := s.Now("r1", "p")
	if len(got) != 2 || got[0].Cmd != "ready" || got[1].Cmd != "progress" || string(got[1].Fields) != `"pct":90` {
		t.Fatalf("got %+v", got)
	}
	if len(s.Now("r1", "other")) != 0 || len(s.Now("r2", "p")) != 0 {
		t.Fatal("messages leak across channels")
	}
	clk.Advance(4 * time.Second) // ready expires at exactly 1006
	got = s.Now("r1", "p")
	if len(got) != 1 || got[0].Cmd != "progress" {
		t.Fatalf("after expiry got %+v", got)
	}
	if n, b := s.Len(); n != 1 || b != size("r1", "p", "progress", []byte(`"pct":90`)) {
		t.Fatalf("len %d, %d bytes", n, b)
	}
	if !s.Delete("r1", "p", "progress") || s.Delete("r1", "p", "progress") {
		t.Fatal("delete")
	}
	if n, b := s.Len(); n != 0 || b != 0 {
		t.Fatalf("after delete: %d messages, %d bytes", n, b)
	}
}

func TestFullStoreSweepsThenRefuses(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(0, 0)}
	s := New(&Options{Now: clk.Now, MaxMessages: 2})
	mustPut := func(name string, ttl time.Duration) error {
		_, err := s.Put(ctx, name, "p", "c", nil, ttl)
		return err
	}
	if mustPut("a", time.Second) != nil || mustPut("b", time.Minute) != nil {
		t.Fatal("put failed below the cap")
	}
	if err := mustPut("c", time.Minute); !errors.Is(err, ErrFull) {
		t.Fatalf("third put: %v", err)
	}
	if err := mustPut("b", time.Minute); err != nil { // replacing is always allowed
		t.Fatalf("replace: %v", err)
	}
	clk.Advance(2 * time.Second) // a expires, making room
	if err := mustPut("c", time.Minute); err != nil {
		t.Fatalf("put after expiry: %v", err)
	}
}

func TestByteCap(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Unix(0, 0)}
	big := make([]byte, 1000)
	s := New(&Options{Now: clk.Now, MaxBytes: 2*size("a", "p", "c", big) + 10})
	put := func(name string, fields []byte) error {
		_, err := s.Put(ctx, name, "p", "c", fields, time.Second)
		return err
	}
	if put("a", big) != nil || put("b", big) != nil {
		t.Fatal("put failed below the cap")
	}
	if err := put("c", big); !errors.Is(err, ErrFull) {
		t.Fatalf("over the byte cap: %v", err)
	}
	if err := put("a", big[:10]); err != nil { // a smaller replacement fits
		t.Fatalf("smaller replacement: %v", err)
	}
	if err := put("c", big[:500]); err != nil {
		t.Fatalf("put into freed bytes: %v", err)
	}
	clk.Advance(time.Second)
	if err := put("d", big); err != nil {
		t.Fatalf("put after expiry: %v", err)
	}
	if n, _ := s.Len(); n != 1 {
		t.Fatalf("%d messages after the sweep, want 1", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	s := New(nil)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				_, _ = s.Put(ctx, "ch", "p", string(rune('a'+i)), []byte(`"j":1`), time.Minute)
				_ = s.Now("ch", "p")
			}
		}(i)
	}
	wg.Wait()
	if n := len(s.Now("ch", "p")); n != 8 {
		t.Fatalf("%d messages, want 8", n)
	}
}
