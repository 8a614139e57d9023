package clientid

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestIDsAreUniqueAndBelow2To53(t *testing.T) {
	now := Epoch.Add(1000 * 24 * time.Hour)
	s := NewSource(Clock(func() time.Time { return now })) // a clock that never moves
	seen := map[int64]bool{}
	for range 3*IDsPerBlock + 7 {
		id, err := s.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if id <= 0 || id >= 1<<53 {
			t.Fatalf("id %d out of range", id)
		}
		if seen[id] {
			t.Fatalf("id %d handed out twice", id)
		}
		seen[id] = true
	}
}

func TestConcurrentIDsAreUnique(t *testing.T) {
	s := NewSource(Clock(nil))
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				id, _ := s.Next(context.Background())
				mu.Lock()
				if seen[id] {
					t.Errorf("id %d handed out twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// A restart is a new Source on the same clock, a moment later: every id it
// hands out is above the previous process's.
func TestRestartStartsAboveThePreviousProcess(t *testing.T) {
	first := NewSource(Clock(nil))
	var last int64
	for range 10 {
		last, _ = first.Next(context.Background())
	}
	time.Sleep(2 * time.Millisecond)
	second := NewSource(Clock(nil))
	id, _ := second.Next(context.Background())
	if id <= last {
		t.Fatalf("after a restart the first id is %d, not above the previous process's last id %d", id, last)
	}
}

// A Server restarted inside its process gets a new Source on the same
// clock, possibly within the same millisecond (here a clock that never
// moves): its ids must still be new.
func TestRestartInsideTheProcess(t *testing.T) {
	frozen := func() time.Time { return Epoch.Add(2000 * 24 * time.Hour) }
	seen := map[int64]bool{}
	for restart := range 3 {
		s := NewSource(Clock(frozen))
		for range 5 {
			id, err := s.Next(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if seen[id] {
				t.Fatalf("after %d in-process restarts id %d came back", restart, id)
			}
			seen[id] = true
		}
	}
}

func TestClockBeforeEpoch(t *testing.T) {
	if b := BlockAt(Epoch.Add(-time.Hour)); b != 0 {
		t.Fatalf("block before the epoch: %d, want 0", b)
	}
	s := NewSource(Clock(func() time.Time { return Epoch.Add(-time.Hour) }))
	if id, err := s.Next(context.Background()); err != nil || id <= 0 {
		t.Fatalf("first id before the epoch: %d, %v", id, err)
	}
}

type fixedBlocks uint64

func (f fixedBlocks) Next(context.Context) (uint64, error) { return uint64(f), nil }

func TestExhausted(t *testing.T) {
	s := NewSource(fixedBlocks(MaxBlock))
	if _, err := s.Next(context.Background()); !errors.Is(err, ErrExhausted) {
		t.Fatalf("got %v, want ErrExhausted", err)
	}
	s = NewSource(fixedBlocks(MaxBlock - 1))
	id, err := s.Next(context.Background())
	if err != nil || id >= 1<<53 {
		t.Fatalf("last block: id %d, err %v", id, err)
	}
}

type failingBlocks struct{}

func (failingBlocks) Next(context.Context) (uint64, error) { return 0, errors.New("down") }

func TestBlockSourceFailure(t *testing.T) {
	if _, err := NewSource(failingBlocks{}).Next(context.Background()); err == nil {
		t.Fatal("no error from a failing block source")
	}
}
