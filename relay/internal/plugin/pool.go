package plugin

import (
	"context"
	"fmt"
)

// pool holds up to cap(slots) live instances of one plugin. Idle instances
// wait in idle; a caller takes one, creates one while below the cap, or
// waits. A failed instance is discarded, which frees its slot.
type pool struct {
	p     *loaded
	idle  chan *instance
	slots chan struct{}
}

func newPool(p *loaded, size int) *pool {
	return &pool{p: p, idle: make(chan *instance, size), slots: make(chan struct{}, size)}
}

func (pl *pool) get(ctx context.Context) (*instance, error) {
	select {
	case in := <-pl.idle:
		return in, nil
	default:
	}
	select {
	case in := <-pl.idle:
		return in, nil
	case pl.slots <- struct{}{}:
		in, err := pl.p.newInstance(ctx)
		if err != nil {
			<-pl.slots
			return nil, fmt.Errorf("%w: new instance: %v", ErrTrap, err)
		}
		return in, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for an instance: %v", ErrTimeout, ctx.Err())
	}
}

// put returns a healthy instance; it never blocks because at most
// cap(slots) instances exist.
func (pl *pool) put(in *instance) { pl.idle <- in }

// discard closes a failed instance and frees its slot.
func (pl *pool) discard(in *instance) {
	in.close()
	<-pl.slots
}

// drain closes the idle instances (at Close).
func (pl *pool) drain() {
	for {
		select {
		case in := <-pl.idle:
			pl.discard(in)
		default:
			return
		}
	}
}
