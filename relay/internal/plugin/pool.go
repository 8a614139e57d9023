package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// pool holds up to size live instances of one plugin. A caller takes an
// idle instance or, when none is idle, queues under its fairness key (the
// client's address) until one is handed to it or its call's deadline
// passes. Instances freed while callers wait go to the queued keys in
// turn, one caller per key per turn, and a key that had nobody waiting goes
// before those that did: many calls from one address queue behind each
// other, not in front of everyone else.
//
// Under overload a waiter whose deadline leaves less than shedMargin, or
// less than its address's last call took, fails at once rather than being
// handed an instance: the deadline would likely stop its guest mid-run,
// and a stopped guest costs its instance, whose replacement takes
// milliseconds of instantiation during which the pool is one short.
//
// New instances are created in the background (below the cap, when a
// caller finds none idle), so a slow instantiation holds up no caller past
// its deadline. A failed instance is discarded, which frees its place.
type pool struct {
	p          *loaded
	size       int
	shedMargin time.Duration

	mu     sync.Mutex
	idle   []*instance
	live   int                      // instances in use, idle or being created
	queues map[string][]*waiter     // waiting callers by fairness key, oldest first
	fresh  []string                 // keys whose callers arrived to an empty queue, served first
	ring   []string                 // keys served before and waiting again, in turn
	runs   map[string]time.Duration // last run time of keys with waiters
	closed bool                     // drained at Close: no more instances are made

	// creating counts the background instantiations; stop cancels them at
	// Close, which waits for them before the runtime goes away.
	creating sync.WaitGroup
	stop     context.Context
	cancel   context.CancelFunc
}

// waiter is one queued caller; got receives exactly one handout.
type waiter struct {
	got      chan handout
	key      string
	deadline time.Time
}

// handout is an instance for a waiter, or the reason there is none.
type handout struct {
	in  *instance
	err error
}

func newPool(p *loaded, size int, timeout time.Duration) *pool {
	pl := &pool{p: p, size: size, shedMargin: timeout / 4, queues: map[string][]*waiter{}, runs: map[string]time.Duration{}}
	pl.stop, pl.cancel = context.WithCancel(context.Background())
	return pl
}

// startCreateLocked starts a background instantiation for a place already
// counted in live. pl.mu must be held.
func (pl *pool) startCreateLocked() {
	pl.creating.Add(1)
	go func() {
		defer pl.creating.Done()
		pl.create()
	}()
}

// get returns an instance for a call by key that must start before
// deadline. Waiting past it fails with ErrTimeout, like a guest overrunning.
func (pl *pool) get(ctx context.Context, key string, deadline time.Time) (*instance, error) {
	pl.mu.Lock()
	if n := len(pl.idle); n > 0 {
		in := pl.idle[n-1]
		pl.idle[n-1] = nil
		pl.idle = pl.idle[:n-1]
		pl.mu.Unlock()
		return in, nil
	}
	if pl.live < pl.size && !pl.closed {
		pl.live++
		pl.startCreateLocked()
	}
	w := &waiter{got: make(chan handout, 1), key: key, deadline: deadline}
	if len(pl.queues[key]) == 0 {
		pl.fresh = append(pl.fresh, key)
	}
	pl.queues[key] = append(pl.queues[key], w)
	pl.mu.Unlock()

	wait := time.NewTimer(time.Until(deadline))
	defer wait.Stop()
	var why error
	select {
	case h := <-w.got:
		return h.in, h.err
	case <-wait.C:
		why = context.DeadlineExceeded
	case <-ctx.Done():
		why = ctx.Err()
	}
	pl.mu.Lock()
	queued := pl.removeLocked(key, w)
	pl.mu.Unlock()
	if !queued {
		// Handed out meanwhile: give it back to the next caller.
		if h := <-w.got; h.in != nil {
			pl.put(h.in, key, 0)
		}
	}
	return nil, fmt.Errorf("%w: no free instance (all %d busy): %v", ErrTimeout, pl.size, why)
}

// removeLocked takes w out of key's queue and reports whether it was there.
func (pl *pool) removeLocked(key string, w *waiter) bool {
	q := pl.queues[key]
	for i, x := range q {
		if x == w {
			q = append(q[:i], q[i+1:]...)
			if len(q) == 0 {
				pl.dropKeyLocked(key)
			} else {
				pl.queues[key] = q
			}
			return true
		}
	}
	return false
}

func (pl *pool) dropKeyLocked(key string) {
	delete(pl.queues, key)
	delete(pl.runs, key)
	pl.fresh = without(pl.fresh, key)
	pl.ring = without(pl.ring, key)
}

func without(keys []string, key string) []string {
	for i, k := range keys {
		if k == key {
			return append(keys[:i], keys[i+1:]...)
		}
	}
	return keys
}

// nextLocked dequeues the oldest caller of the key whose turn it is: the
// first fresh key, else the first of the ring. A key still waiting then
// goes to the back of the ring. It returns nil when nobody waits, and the
// key's last run time (0: unknown).
func (pl *pool) nextLocked() (*waiter, time.Duration) {
	var key string
	switch {
	case len(pl.fresh) > 0:
		key = pl.fresh[0]
		pl.fresh = append(pl.fresh[:0], pl.fresh[1:]...)
	case len(pl.ring) > 0:
		key = pl.ring[0]
		pl.ring = append(pl.ring[:0], pl.ring[1:]...)
	default:
		return nil, 0
	}
	q := pl.queues[key]
	w, ran := q[0], pl.runs[key]
	q[0] = nil
	if q = q[1:]; len(q) == 0 {
		delete(pl.queues, key)
		delete(pl.runs, key)
	} else {
		pl.queues[key] = q
		pl.ring = append(pl.ring, key)
	}
	return w, ran
}

// put returns a healthy instance after a call by key that ran for ran: to
// the next waiting caller, or idle. Waiters too close to their deadline are
// failed on the way (see pool).
func (pl *pool) put(in *instance, key string, ran time.Duration) {
	pl.mu.Lock()
	pl.ranLocked(key, ran)
	for {
		w, est := pl.nextLocked()
		if w == nil {
			break
		}
		if left := time.Until(w.deadline); left < max(pl.shedMargin, est) {
			w.got <- handout{err: fmt.Errorf("%w: no free instance until %v before the deadline", ErrTimeout, left.Round(time.Millisecond))}
			continue
		}
		pl.mu.Unlock()
		w.got <- handout{in: in}
		return
	}
	pl.idle = append(pl.idle, in)
	pl.mu.Unlock()
}

// discard closes a failed instance and starts its replacement at once, so
// the next caller finds the pool at strength rather than paying for the
// instantiation within its own deadline.
func (pl *pool) discard(in *instance, key string, ran time.Duration) {
	in.close()
	pl.mu.Lock()
	pl.ranLocked(key, ran)
	if pl.closed {
		pl.live--
	} else {
		pl.startCreateLocked()
	}
	pl.mu.Unlock()
}

// ranLocked records how long key's call ran, while key has waiters (an
// address that stops waiting is forgotten). pl.mu must be held.
func (pl *pool) ranLocked(key string, ran time.Duration) {
	if _, waiting := pl.queues[key]; waiting && ran > 0 {
		pl.runs[key] = ran
	}
}

// create makes one instance for a place already counted in live.
func (pl *pool) create() {
	in, err := pl.p.newInstance(pl.stop)
	pl.mu.Lock()
	closed := pl.closed
	pl.mu.Unlock()
	if closed {
		if in != nil {
			in.close()
		}
		return
	}
	if err == nil {
		pl.put(in, "", 0)
		return
	}
	pl.p.failLogs.emit(slog.LevelError, "cannot create a plugin instance", slog.String("error", err.Error()))
	pl.mu.Lock()
	pl.live--
	w, _ := pl.nextLocked()
	pl.mu.Unlock()
	if w != nil {
		w.got <- handout{err: fmt.Errorf("%w: new instance: %v", ErrTrap, err)}
	}
}

// reserve counts an instance the caller creates itself (the first, at load).
func (pl *pool) reserve() {
	pl.mu.Lock()
	pl.live++
	pl.mu.Unlock()
}

// unreserve gives back a place reserve counted when creating failed.
func (pl *pool) unreserve() {
	pl.mu.Lock()
	pl.live--
	pl.mu.Unlock()
}

// drain closes the idle instances and stops and waits for the background
// instantiations (at Close, before the runtime is closed under them).
func (pl *pool) drain() {
	pl.mu.Lock()
	pl.closed = true
	idle := pl.idle
	pl.idle = nil
	pl.live -= len(idle)
	pl.mu.Unlock()
	pl.cancel()
	pl.creating.Wait()
	for _, in := range idle {
		in.close()
	}
}
