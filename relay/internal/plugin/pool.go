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
// Under overload a waiter that has used most of its deadline in the queue
// (all but shedMargin of it) fails at once rather than being handed an
// instance: the deadline would likely stop its guest mid-run, and a
// stopped guest costs its instance, whose replacement takes milliseconds
// of instantiation during which the pool is one short.
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
	live   int                  // instances in use, idle or being created
	queues map[string][]*waiter // waiting callers by fairness key, oldest first
	fresh  []string             // keys whose callers arrived to an empty queue, served first
	ring   []string             // keys served before and waiting again, in turn
}

// waiter is one queued caller; got receives exactly one handout.
type waiter struct {
	got      chan handout
	deadline time.Time
}

// handout is an instance for a waiter, or the reason there is none.
type handout struct {
	in  *instance
	err error
}

func newPool(p *loaded, size int, timeout time.Duration) *pool {
	return &pool{p: p, size: size, shedMargin: timeout / 4, queues: map[string][]*waiter{}}
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
	if pl.live < pl.size {
		pl.live++
		go pl.create()
	}
	w := &waiter{got: make(chan handout, 1), deadline: deadline}
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
			pl.put(h.in)
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
// goes to the back of the ring. It returns nil when nobody waits.
func (pl *pool) nextLocked() *waiter {
	var key string
	switch {
	case len(pl.fresh) > 0:
		key = pl.fresh[0]
		pl.fresh = append(pl.fresh[:0], pl.fresh[1:]...)
	case len(pl.ring) > 0:
		key = pl.ring[0]
		pl.ring = append(pl.ring[:0], pl.ring[1:]...)
	default:
		return nil
	}
	q := pl.queues[key]
	w := q[0]
	q[0] = nil
	if q = q[1:]; len(q) == 0 {
		delete(pl.queues, key)
	} else {
		pl.queues[key] = q
		pl.ring = append(pl.ring, key)
	}
	return w
}

// put returns a healthy instance: to the next waiting caller, or idle.
// Waiters too close to their deadline are failed on the way (see pool).
func (pl *pool) put(in *instance) {
	pl.mu.Lock()
	for {
		w := pl.nextLocked()
		if w == nil {
			break
		}
		if left := time.Until(w.deadline); left < pl.shedMargin {
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
func (pl *pool) discard(in *instance) {
	in.close()
	go pl.create()
}

// create makes one instance for a place already counted in live.
func (pl *pool) create() {
	in, err := pl.p.newInstance(context.Background())
	if err == nil {
		pl.put(in)
		return
	}
	pl.p.failLogs.emit(slog.LevelError, "cannot create a plugin instance", slog.String("error", err.Error()))
	pl.mu.Lock()
	pl.live--
	w := pl.nextLocked()
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

// drain closes the idle instances (at Close).
func (pl *pool) drain() {
	pl.mu.Lock()
	idle := pl.idle
	pl.idle = nil
	pl.live -= len(idle)
	pl.mu.Unlock()
	for _, in := range idle {
		in.close()
	}
}
