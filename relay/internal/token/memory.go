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
	// MaxCount caps the free tokens (minted and not yet claimed, or
	// released and within the rejoin window). 0 means no cap. A claimed
	// token is its member's, bounded by the connections a relay takes, so
	// it does not count: a relay holding 100,000 joined members can still
	// mint.
	MaxCount int
	// MaxBytes caps the memory free tokens take, as counted by
	// EntryBytes. 0 means no cap.
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
	tokens     map[string]*entry // free tokens
	held       map[string]int64  // claimed tokens, to their holder
	bytes      int64             // EntryBytes of every free token
	sinceSweep int               // mints (refused ones included) since the last sweep
	sweeper    *time.Timer       // runs sweepTick while the store holds free tokens; nil when none
}

// entry is one free token. A claim drops it, keeping only the holder in
// Memory.held: the member that joined with the token holds its state (the
// grant's channel, mode, extra and authority, changed by SET_EXTRA since),
// and Release builds the entry again from that state. A joined member so
// costs the store one map slot instead of an 80-byte entry and the grant's
// extra a second time. The grant's fields are inline with the small ones
// packed, and the deadline is a Duration from Memory.base rather than a
// time.Time: 80 bytes where a Grant and a time.Time made 112.
type entry struct {
	channel, protocol string
	extra             []byte
	expires           time.Duration // claim deadline, since Memory.base
	size              int32         // EntryBytes when stored
	mode              int8
	makeAuth          bool
}

func newEntry(g Grant, expires time.Duration, size int64) *entry {
	return &entry{channel: g.Channel, protocol: g.Protocol, extra: g.Extra, expires: expires,
		size: int32(size), mode: int8(g.Mode), makeAuth: g.MakeAuth}
}

func (e *entry) grant() Grant {
	return Grant{Channel: e.channel, Protocol: e.protocol, Mode: int(e.mode), Extra: e.extra, MakeAuth: e.makeAuth}
}

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
	m := &Memory{now: time.Now, rejoin: 30 * time.Second, every: time.Second, tokens: map[string]*entry{}, held: map[string]int64{}}
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
	m.addLocked(tok, g, exp, size)
	return tok, exp, nil
}

// fullLocked reports whether a token of size would pass a cap. m.mu must
// be held.
func (m *Memory) fullLocked(size int64) bool {
	return m.maxCount > 0 && len(m.tokens) >= m.maxCount || m.maxBytes > 0 && m.bytes+size > m.maxBytes
}

// sweepTick is the timer's sweep: it frees expired tokens on time, without
// waiting for mints, and stops the timer once no free token is left (held
// ones never expire), so an idle store costs nothing.
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

// Claim implements Store. A held token is refused to everyone, its holder
// included: the relay recognises a repeated JOIN with the token its
// membership holds without asking the store.
func (m *Memory) Claim(_ context.Context, tok, channel, protocol string, holder int64) (Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.held[tok]; ok {
		return Grant{}, ErrInUse
	}
	e, ok := m.tokens[tok]
	if !ok {
		return Grant{}, ErrUnknown
	}
	if e.channel != channel || e.protocol != protocol {
		return Grant{}, ErrWrongChannel
	}
	m.deleteLocked(tok, e)
	if m.now().Sub(m.base) >= e.expires {
		return Grant{}, ErrExpired
	}
	// Key the claim by the claimer's copy of the token: the member keeps
	// that copy for as long as it stays joined, so the store and the
	// member share one string instead of holding two.
	m.held[tok] = holder
	return e.grant(), nil
}

// Release implements Store. current's Channel and Protocol must be those
// the token was claimed for (the member's channel): the store kept only
// the holder.
func (m *Memory) Release(_ context.Context, tok string, holder int64, current Grant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.held[tok]; !ok || h != holder {
		return nil
	}
	delete(m.held, tok)
	m.addLocked(tok, current, m.now().Add(m.rejoin), EntryBytes(current))
	return nil
}

// Len returns how many tokens the store holds, claimed ones and expired
// ones not yet swept included.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tokens) + len(m.held)
}

// Bytes returns the memory the free tokens are counted as (EntryBytes).
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
		if at >= e.expires {
			m.deleteLocked(tok, e)
		}
	}
	// A map keeps its largest size: start afresh so a burst's table is
	// freed too (of mints, or of members that have all left).
	if len(m.tokens) == 0 {
		m.tokens = map[string]*entry{}
	}
	if len(m.held) == 0 {
		m.held = map[string]int64{}
	}
}

// addLocked stores tok as a free token for g, claimable until expires,
// counted as size, and starts the sweep timer if it is not running. m.mu
// must be held.
func (m *Memory) addLocked(tok string, g Grant, expires time.Time, size int64) {
	m.tokens[tok] = newEntry(g, expires.Sub(m.base), size)
	m.bytes += size
	if m.sweeper == nil {
		m.sweeper = time.AfterFunc(m.every, m.sweepTick)
	}
}

func (m *Memory) deleteLocked(tok string, e *entry) {
	delete(m.tokens, tok)
	m.bytes -= int64(e.size)
}
