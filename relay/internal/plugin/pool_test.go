package plugin_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/plugin"
)

// deadlineSlack is how far past its deadline a call may return: the time
// wazero takes to stop a guest and the scheduler's delay on a loaded
// machine, far less than any guest's misbehaviour.
const deadlineSlack = 150 * time.Millisecond

func from(addr, cmd string) *plugin.MessageRequest {
	m := msg(cmd, `{"text":"x"}`)
	m.Addr = addr
	return m
}

func TestSleepingGuestStopsAtTheDeadline(t *testing.T) {
	const timeout = 100 * time.Millisecond
	h, _ := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", "")}, Timeout: timeout, Instances: 1})
	for round := range 2 { // the second round runs on a fresh instance
		if round > 0 {
			// Wait for the replacement first: a call that would wait for
			// it with less of its deadline left than this address's last
			// call took is refused early, by design, which is not what
			// this test measures.
			waitForRecovery(t, h)
		}
		start := time.Now()
		out := h.FilterMessage(context.Background(), from("a", "sleep")) // time.Sleep(5 * time.Second)
		d := time.Since(start)
		if out.Action != plugin.Reject || out.ErrorCode != plugin.CodeTimeout {
			t.Fatalf("got %v %q, want reject %q", out.Action, out.ErrorCode, plugin.CodeTimeout)
		}
		if d < timeout || d > timeout+deadlineSlack {
			t.Fatalf("a guest sleeping 5 s answered after %v; the deadline is %v", d, timeout)
		}
	}
	waitForRecovery(t, h)
}

// waitForRecovery waits for calls to succeed again after a failure: the
// failed instance is replaced in the background (an instantiation takes
// milliseconds, more on a loaded machine).
func waitForRecovery(t *testing.T, h *plugin.Host) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		out := h.FilterMessage(context.Background(), from("a", "pass"))
		if out.Action == plugin.Deliver {
			return
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("calls still fail 5 s after a failure: %+v", out)
		}
	}
}

func TestWaitingForAnInstanceCountsTowardTheDeadline(t *testing.T) {
	const timeout = 100 * time.Millisecond
	h, _ := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", "")}, Timeout: timeout, Instances: 1})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.FilterMessage(context.Background(), from("a", "sleep")) // holds the only instance to its deadline
	}()
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	out := h.FilterMessage(context.Background(), from("b", "pass"))
	d := time.Since(start)
	wg.Wait()
	if d > timeout+deadlineSlack {
		t.Fatalf("a call waiting for an instance took %v; the deadline is %v", d, timeout)
	}
	if out.Action == plugin.Reject && out.ErrorCode != plugin.CodeTimeout {
		t.Fatalf("the waiting call failed with %q, want %q or delivery", out.ErrorCode, plugin.CodeTimeout)
	}
}

// TestOneAddressCannotMonopoliseThePool: eight callers from one address
// keep both instances busy with a 50 ms plugin; a caller from another
// address is served at the next free instance, not after their queue.
func TestOneAddressCannotMonopoliseThePool(t *testing.T) {
	const timeout = 300 * time.Millisecond
	h, _ := load(t, plugin.Config{Plugins: []plugin.Spec{chaos(t, "chaos", "")}, Timeout: timeout, Instances: 2})
	var stop atomic.Bool
	var wg sync.WaitGroup
	var busyCalls atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				h.FilterMessage(context.Background(), from("10.0.0.1", "slow"))
				busyCalls.Add(1)
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	time.Sleep(200 * time.Millisecond) // let the busy callers fill the queue
	var worst time.Duration
	for range 20 {
		start := time.Now()
		out := h.FilterMessage(context.Background(), from("10.0.0.2", "pass"))
		d := time.Since(start)
		worst = max(worst, d)
		if out.Action != plugin.Deliver {
			t.Fatalf("the healthy caller's call failed after %v: %+v", d, out)
		}
	}
	// Two releases of a 50 ms call at most, plus scheduling; queued behind
	// the eight busy callers it would be four rounds (200 ms).
	if worst > 100*time.Millisecond+deadlineSlack/3 {
		t.Fatalf("the healthy caller waited up to %v beside 8 busy callers", worst)
	}
	if busyCalls.Load() == 0 {
		t.Fatal("the busy callers were not served at all")
	}
	t.Logf("healthy caller: worst latency %v; busy callers: %d calls", worst, busyCalls.Load())
}

// warm makes calls n at a time until n calls at once all succeed: the pool
// then holds n instances. Instances are created in the background within
// no call's deadline, so right after Load (or a failure) a concurrent call
// may time out on a loaded machine; tests about something else warm first.
func warm(t *testing.T, h *plugin.Host, n int) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		var ok atomic.Int64
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if h.FilterMessage(context.Background(), from("warm", "pass")).Action == plugin.Deliver {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() == int64(n) {
			return
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the pool did not reach %d instances in 10 s", n)
		}
	}
}
