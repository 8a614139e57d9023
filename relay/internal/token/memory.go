package token

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

var _ Store = (*Memory)(nil)

// MemoryOptions configures a Memory store. The zero value is usable.
type MemoryOptions struct {
	// Rejoin is how long a released token stays claimable. Default 30s.
	Rejoin time.Duration
	// Now is the clock. Default time.Now. Tests inject their own.
	Now func() time.Time
}

// Memory is a Store held in this process.
type Memory struct {
	now    func() time.Time
	rejoin time.Duration

	mu         sync.Mutex
	tokens     map[string]*entry
	sinceSweep int
}

type entry struct {
	grant   Grant
	expires time.Time // claim deadline while free
	holder  int64     // 0 while free
}

// sweepEvery is how many mints pass between sweeps of expired tokens.
const sweepEvery = 1024

// NewMemory returns an empty store.
func NewMemory(opts *MemoryOptions) *Memory {
	m := &Memory{now: time.Now, rejoin: 30 * time.Second, tokens: map[string]*entry{}}
	if opts != nil {
		if opts.Now != nil {
			m.now = opts.Now
		}
		if opts.Rejoin > 0 {
			m.rejoin = opts.Rejoin
		}
	}
	return m
}

// Mint implements Store.
func (m *Memory) Mint(_ context.Context, g Grant, ttl time.Duration) (string, time.Time, error) {
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, err
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	exp := now.Add(ttl)
	m.tokens[tok] = &entry{grant: g, expires: exp}
	if m.sinceSweep++; m.sinceSweep >= sweepEvery {
		m.sweepLocked(now)
	}
	return tok, exp, nil
}

// Claim implements Store.
func (m *Memory) Claim(_ context.Context, tok, channel, protocol string, holder int64) (Grant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.tokens[tok]
	if !ok {
		return Grant{}, ErrUnknown
	}
	if e.grant.Channel != channel || e.grant.Protocol != protocol {
		return Grant{}, ErrWrongChannel
	}
	if e.holder != 0 {
		if e.holder == holder {
			return e.grant, nil
		}
		return Grant{}, ErrInUse
	}
	if !m.now().Before(e.expires) {
		delete(m.tokens, tok)
		return Grant{}, ErrExpired
	}
	e.holder = holder
	return e.grant, nil
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, tok string, holder int64, current Grant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.tokens[tok]; ok && e.holder == holder {
		e.grant.Mode, e.grant.Extra, e.grant.MakeAuth = current.Mode, current.Extra, current.MakeAuth
		e.holder = 0
		e.expires = m.now().Add(m.rejoin)
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

// sweepLocked drops free tokens past their deadline. m.mu must be held.
func (m *Memory) sweepLocked(now time.Time) {
	m.sinceSweep = 0
	for tok, e := range m.tokens {
		if e.holder == 0 && !now.Before(e.expires) {
			delete(m.tokens, tok)
		}
	}
}
