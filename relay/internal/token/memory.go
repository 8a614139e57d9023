package token

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// ErrFull is returned by Mint when the store holds MaxCount tokens or
// MaxBytes, expired ones dropped first.
var ErrFull = errors.New("token: store full")

var _ Store = (*Memory)(nil)

// MemoryOptions configures a Memory store. The zero value is usable.
type MemoryOptions struct {
	// Rejoin is how long a released token stays claimable. Default 30s.
	Rejoin time.Duration
	// Now is the clock. Default time.Now. Tests inject their own.
	Now func() time.Time
	// MaxCount caps the tokens held, claimed ones included. 0 means no cap.
	MaxCount int
	// MaxBytes caps the memory tokens take, as counted by EntryBytes. 0
	// means no cap.
	MaxBytes int64
	// SweepInterval is how often expired tokens are dropped while the
	// store holds any. Default 1s.
	SweepInterval time.Duration
}

// Memory is a Store held in this process.
type Memory struct {
	now      func() time.Time
	rejoin   time.Duration
	maxCount int
	maxBytes int64
	every    time.Duration

	base       time.Time // the clock when the store was made; entries' deadlines count from it
	mu         sync.Mutex
	tokens     map[string]*entry
	bytes      int64       // EntryBytes of every token held
	sinceSweep int         // mints (refused ones included) since the last sweep
	sweeper    *time.Timer // runs sweepTick while the store holds tokens; nil when empty
}

// entry is one token. A joined member's token is held for as long as it
// stays joined, so the entry is kept small: the grant's fields inline with
// the small ones packed, and the deadline a Duration from Memory.base
// rather than a time.Time, make 80 bytes where a Grant and a time.Time
// made 112.
type entry struct {
	channel, protocol string
	extra             []byte
	expires           time.Duration // claim deadline while free, since Memory.base
	holder            int64         // 0 while free
	size              int32         // EntryBytes at mint
	mode              int8
	makeAuth          bool
}

func newEntry(g Grant, expires time.Duration, size int64) *entry {
	e := &entry{channel: g.Channel, protocol: g.Protocol, expires: expires, size: int32(size)}
	e.set(g)
	return e
}

func (e *entry) grant() Grant {
	return Grant{Channel: e.channel, Protocol: e.protocol, Mode: int(e.mode), Extra: e.extra, MakeAuth: e.makeAuth}
}

// set stores what a member may change while it holds the token.
func (e *entry) set(g Grant) { e.mode, e.extra, e.makeAuth = int8(g.Mode), g.Extra, g.MakeAuth }

// sweepEvery is the fewest mints between two sweeps made by Mint (besides
// the timer's): a sweep costs the store's size, so Mint sweeps after at
// least half the store's size in mints, keeping its cost per mint constant.
const sweepEvery = 1024

// entryOverhead approximates what a token costs beyond its strings: the map
// slot, the entry and the token text.
const entryOverhead = 160

// EntryBytes is the memory one token for g is counted as.
func EntryBytes(g Grant) int64 {
	return int64(entryOverhead + len(g.Channel) + len(g.Protocol) + len(g.Extra))
}

// NewMemory returns an empty store.
func NewMemory(opts *MemoryOptions) *Memory {
	m := &Memory{now: time.Now, rejoin: 30 * time.Second, every: time.Second, tokens: map[string]*entry{}}
	if opts != nil {
		if opts.Now != nil {
			m.now = opts.Now
		}
		if opts.Rejoin > 0 {
			m.rejoin = opts.Rejoin
		}
		if opts.SweepInterval > 0 {
			m.every = opts.SweepInterval
		}
		m.maxCount, m.maxBytes = opts.MaxCount, opts.MaxBytes
	}
	m.base = m.now()
	return m
}

// Mint implements Store.
func (m *Memory) Mint(_ context.Context, g Grant, ttl time.Duration) (string, time.Time, error) {
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, err
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	size := EntryBytes(g)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.sinceSweep++
	full := m.fullLocked(size)
	if m.sinceSweep >= max(sweepEvery, len(m.tokens)/2) || full && m.sinceSweep >= len(m.tokens)/16 {
		m.sweepLocked(now)
		full = m.fullLocked(size)
	}
	if full {
		return "", time.Time{}, ErrFull
	}
	exp := now.Add(ttl)
	m.tokens[tok] = newEntry(g, exp.Sub(m.base), size)
	m.bytes += size
	if m.sweeper == nil {
		m.sweeper = time.AfterFunc(m.every, m.sweepTick)
	}
	return tok, exp, nil
}

// fullLocked reports whether a token of size would pass a cap. m.mu must
// be held.
func (m *Memory) fullLocked(size int64) bool {
	return m.maxCount > 0 && len(m.tokens) >= m.maxCount || m.maxBytes > 0 && m.bytes+size > m.maxBytes
}

// sweepTick is the timer's sweep: it frees expired tokens on time, without
// waiting for mints, and stops the timer once the store is empty, so an idle
// store costs nothing.
func (m *Memory) sweepTick() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweepLocked(m.now())
	if len(m.tokens) == 0 {
		m.sweeper = nil
		return
	}
	m.sweeper.Reset(m.every)
}

// Claim implements Store.
func (m *Memory) Claim(_ context.Context, tok, channel, protocol string, holder int64) (Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.tokens[tok]
	if !ok {
		return Grant{}, ErrUnknown
	}
	if e.channel != channel || e.protocol != protocol {
		return Grant{}, ErrWrongChannel
	}
	if e.holder != 0 {
		if e.holder == holder {
			return e.grant(), nil
		}
		return Grant{}, ErrInUse
	}
	if m.now().Sub(m.base) >= e.expires {
		m.deleteLocked(tok, e)
		return Grant{}, ErrExpired
	}
	e.holder = holder
	// Key the entry by the claimer's copy of the token: the member keeps
	// that copy for as long as it stays joined, so the store and the
	// member share one string instead of holding two (24 bytes per joined
	// member).
	delete(m.tokens, tok)
	m.tokens[tok] = e
	return e.grant(), nil
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, tok string, holder int64, current Grant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.tokens[tok]; ok && e.holder == holder {
		e.set(current)
		e.holder = 0
		e.expires = m.now().Add(m.rejoin).Sub(m.base)
	}
	return nil
}

// Len returns how many tokens the store holds, expired ones not yet swept
// included.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tokens)
}

// Bytes returns the memory the held tokens are counted as (EntryBytes).
func (m *Memory) Bytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
}

// sweepLocked drops free tokens past their deadline. m.mu must be held.
func (m *Memory) sweepLocked(now time.Time) {
	m.sinceSweep = 0
	at := now.Sub(m.base)
	for tok, e := range m.tokens {
		if e.holder == 0 && at >= e.expires {
			m.deleteLocked(tok, e)
		}
	}
	if len(m.tokens) == 0 {
		// A map keeps its largest size: start afresh so a burst's table
		// is freed too.
		m.tokens = map[string]*entry{}
	}
}

func (m *Memory) deleteLocked(tok string, e *entry) {
	delete(m.tokens, tok)
	m.bytes -= int64(e.size)
}
