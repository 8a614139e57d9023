// Package retain keeps messages published with a retention time, so that a
// client joining a channel after the publish still receives them.
//
// The store keeps the latest message per (channel name, protocol, cmd): a
// new retained publish with the same cmd replaces the old one. Messages
// expire after their own lifetime; expired messages are never returned and
// are swept lazily. The store is safe for concurrent use and knows nothing
// of channels' numbers or members: the relay encodes a stored message for
// the joiner's channel number when it replays it.
//
// Memory holds the messages of one process; internal/cluster holds them in
// the cluster's shared state, behind the same Store interface.
package retain

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"
)

// ErrFull is returned by Put when the store holds its maximum number of
// messages or bytes and expiring messages does not make room.
var ErrFull = errors.New("retain: store full")

// Options configures a Store. A nil *Options means all defaults.
type Options struct {
	// Now returns the current time; tests inject a fake clock here.
	// Default: time.Now.
	Now func() time.Time
	// MaxMessages bounds how many messages the store holds. Default: 10000.
	MaxMessages int
	// MaxBytes bounds the bytes the messages take (fields, cmd and channel
	// names, plus a fixed overhead each). Default: 64 MiB.
	MaxBytes int64
}

// overhead approximates a stored message's fixed cost in bytes.
const overhead = 96

func size(name, protocol, cmd string, fields []byte) int64 {
	return int64(len(name) + len(protocol) + len(cmd) + len(fields) + overhead)
}

// Message is one retained message.
type Message struct {
	// Cmd is the message's application command.
	Cmd string
	// Fields is the message's other fields as the members of a JSON object
	// without braces (`"a":1,"b":"x"`), or empty. Read-only.
	Fields []byte
	// Published and Expires bound the message's life.
	Published time.Time
	Expires   time.Time
}

type key struct{ name, protocol string }

// Store holds retained messages. Implementations are safe for concurrent
// use; an error other than ErrFull means the store could not be reached.
type Store interface {
	// Put retains a message for channel (name, protocol) for ttl,
	// replacing the message with the same cmd, and returns when it
	// expires.
	Put(ctx context.Context, name, protocol, cmd string, fields []byte, ttl time.Duration) (time.Time, error)
	// Get returns the unexpired messages of channel (name, protocol),
	// oldest publish first.
	Get(ctx context.Context, name, protocol string) ([]Message, error)
}

var _ Store = (*Memory)(nil)

// Memory is a Store held in this process. Its methods never block on
// anything but its own lock, so Get may be called under a hub lock.
type Memory struct {
	now      func() time.Time
	max      int
	maxBytes int64

	mu    sync.Mutex
	byKey map[key]map[string]*Message // channel -> cmd -> message
	count int
	bytes int64
}

// New returns an empty Memory store.
func New(opts *Options) *Memory {
	s := &Memory{now: time.Now, max: 10000, maxBytes: 64 << 20, byKey: map[key]map[string]*Message{}}
	if opts != nil {
		if opts.Now != nil {
			s.now = opts.Now
		}
		if opts.MaxMessages > 0 {
			s.max = opts.MaxMessages
		}
		if opts.MaxBytes > 0 {
			s.maxBytes = opts.MaxBytes
		}
	}
	return s
}

// Put implements Store.
func (s *Memory) Put(_ context.Context, name, protocol, cmd string, fields []byte, ttl time.Duration) (time.Time, error) {
	now := s.now()
	m := &Message{Cmd: cmd, Fields: append([]byte(nil), fields...), Published: now, Expires: now.Add(ttl)}
	k := key{name, protocol}
	need := size(name, protocol, cmd, fields)
	s.mu.Lock()
	defer s.mu.Unlock()
	fits := func() bool {
		n, b := s.count+1, s.bytes+need
		if old, ok := s.byKey[k][cmd]; ok {
			n, b = s.count, b-size(name, protocol, cmd, old.Fields)
		}
		return n <= s.max && b <= s.maxBytes
	}
	if !fits() {
		s.sweepLocked(now)
		if !fits() {
			return time.Time{}, ErrFull
		}
	}
	if old, ok := s.byKey[k][cmd]; ok {
		s.removeLocked(k, s.byKey[k], old)
	}
	cmds := s.byKey[k]
	if cmds == nil {
		cmds = map[string]*Message{}
		s.byKey[k] = cmds
	}
	s.count++
	s.bytes += need
	cmds[cmd] = m
	return m.Expires, nil
}

// Get implements Store; its error is always nil.
func (s *Memory) Get(_ context.Context, name, protocol string) ([]Message, error) {
	return s.Now(name, protocol), nil
}

// Now returns the unexpired messages of channel (name, protocol), oldest
// publish first, without a context: it never waits on anything but the
// store's lock.
func (s *Memory) Now(name, protocol string) []Message {
	now := s.now()
	k := key{name, protocol}
	s.mu.Lock()
	defer s.mu.Unlock()
	cmds := s.byKey[k]
	if len(cmds) == 0 {
		return nil // the common case, cheap: a JOIN's replay calls it
	}
	var out []Message
	for _, m := range cmds {
		if !now.Before(m.Expires) {
			s.removeLocked(k, cmds, m)
			continue
		}
		out = append(out, *m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Published.Equal(out[j].Published) {
			return out[i].Cmd < out[j].Cmd
		}
		return out[i].Published.Before(out[j].Published)
	})
	return out
}

// Delete removes the retained message cmd of channel (name, protocol) and
// reports whether there was one.
func (s *Memory) Delete(name, protocol, cmd string) bool {
	k := key{name, protocol}
	s.mu.Lock()
	defer s.mu.Unlock()
	cmds := s.byKey[k]
	m, ok := cmds[cmd]
	if !ok {
		return false
	}
	s.removeLocked(k, cmds, m)
	return true
}

// Len returns how many messages the store holds and their size in bytes,
// expired ones not yet swept included.
func (s *Memory) Len() (messages int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count, s.bytes
}

// sweepLocked drops every expired message. s.mu must be held.
func (s *Memory) sweepLocked(now time.Time) {
	for k, cmds := range s.byKey {
		for _, m := range cmds {
			if !now.Before(m.Expires) {
				s.removeLocked(k, cmds, m)
			}
		}
	}
}

// removeLocked drops m, the message of cmds (channel k). s.mu must be held.
func (s *Memory) removeLocked(k key, cmds map[string]*Message, m *Message) {
	delete(cmds, m.Cmd)
	s.count--
	s.bytes -= size(k.name, k.protocol, m.Cmd, m.Fields)
	if len(cmds) == 0 {
		delete(s.byKey, k)
	}
}
