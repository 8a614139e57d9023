// Package clientid hands out client ids that are never reused: not after a
// restart of the process, and not by another instance of a cluster.
//
// An id is a block number shifted left by BlockBits, plus a number within
// the block from 1 to IDsPerBlock. A block is handed out once: the
// single-process source (Clock) uses the current millisecond since Epoch, or
// one past the last block it gave when the clock has not moved on, so a
// restarted process starts above every id the previous one handed out; a
// cluster's source draws blocks from a shared counter in the same way, so
// two instances never share a block.
//
// Every id is below 2^53, so JavaScript numbers and PHP floats hold it
// exactly (the browser SDK sends a target id as a string, which the relay
// parses through float64), until blocks run out in 2095.
package clientid

import (
	"context"
	"errors"
	"sync"
	"time"
)

const (
	// BlockBits is how many low bits of an id number it within its block.
	BlockBits = 12
	// IDsPerBlock is how many ids one block holds (0 is never an id: in
	// the protocol, "from":0 is the relay itself).
	IDsPerBlock = 1<<BlockBits - 1
	// MaxBlock is one past the largest block number: ids stay below 2^53.
	MaxBlock = 1 << (53 - BlockBits)
)

// Epoch is the time of block 0.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ErrExhausted is returned when no block below MaxBlock is left.
var ErrExhausted = errors.New("clientid: no client id blocks left (ids would pass 2^53)")

// Blocks is a source of block numbers, each returned at most once.
type Blocks interface {
	// Next returns a block number never returned before by this source
	// (or, for a shared source, by any instance using it).
	Next(ctx context.Context) (uint64, error)
}

// Source hands out ids from blocks. It is safe for concurrent use.
type Source struct {
	blocks Blocks

	mu    sync.Mutex
	block uint64
	n     uint64 // last number used in block; IDsPerBlock: take a new block
}

// NewSource returns a Source drawing its blocks from b.
func NewSource(b Blocks) *Source {
	return &Source{blocks: b, n: IDsPerBlock}
}

// Next returns a new id. It fails only when a new block is needed and b
// cannot give one.
func (s *Source) Next(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == IDsPerBlock {
		b, err := s.blocks.Next(ctx)
		if err != nil {
			return 0, err
		}
		if b >= MaxBlock {
			return 0, ErrExhausted
		}
		s.block, s.n = b, 0
	}
	s.n++
	return int64(s.block<<BlockBits | s.n), nil
}

// Block returns the block an id belongs to.
func Block(id int64) uint64 { return uint64(id) >> BlockBits }

// Clock returns the single-process Blocks: the current millisecond since
// Epoch by now (time.Now when nil), or one past the last block it returned,
// whichever is larger. A process restarted later starts above every block
// the previous one used, as long as the host's clock does not step back
// past them (one block lasts IDsPerBlock connections, so blocks run ahead of
// the clock only above 4 million connections a second).
//
// Every Clock of one process counts from the same last block, so a Server
// restarted inside its process (a library user's reload, within the same
// millisecond) never hands out its predecessor's ids either.
func Clock(now func() time.Time) Blocks {
	if now == nil {
		now = time.Now
	}
	return &clock{now: now, taken: &processBlocks}
}

type clock struct {
	now   func() time.Time
	taken *lastBlock
}

// lastBlock is the last block a process's clocks handed out.
type lastBlock struct {
	mu   sync.Mutex
	last uint64
	used bool
}

// processBlocks is shared by every Clock in the process.
var processBlocks lastBlock

// BlockAt returns the block of time t: milliseconds since Epoch (0 before
// it).
func BlockAt(t time.Time) uint64 {
	ms := t.Sub(Epoch).Milliseconds()
	if ms < 0 {
		return 0
	}
	return uint64(ms)
}

func (c *clock) Next(context.Context) (uint64, error) {
	b := BlockAt(c.now())
	t := c.taken
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.used && b <= t.last {
		b = t.last + 1
	}
	t.last, t.used = b, true
	return b, nil
}
