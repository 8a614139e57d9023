package hub

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relay-project/relay/relay/protocol"
)

var _ Hub = (*Memory)(nil)

// Memory is a Hub held in this process.
type Memory struct {
	lastID atomic.Int64 // last channel number handed out
	// live counts channels with members: one more when a channel is
	// created, one less when its last member leaves (before that member
	// is told LEFT, so a caller who saw the LEFT sees the count drop).
	live atomic.Int64

	mu       sync.Mutex
	channels map[chanKey]*Channel

	// Broker links this hub to the other instances of a cluster; nil in
	// one process. Set it before the hub is used.
	Broker Broker
}

type chanKey struct{ name, protocol string }

// NewMemory returns an empty hub.
func NewMemory() *Memory {
	return &Memory{channels: map[chanKey]*Channel{}}
}

// Join implements Hub.
func (h *Memory) Join(ctx context.Context, r Recipient, name, proto string, info protocol.MemberInfo, token string, binary bool, replay Replay) (*Channel, string, error) {
	for {
		ch := h.findOrCreate(name, proto)
		var rev uint64
		if h.Broker != nil {
			// The shared state first, outside the lock: the channel's
			// subscription, then the member's record, so an instance
			// subscribing meanwhile reads the member.
			err := h.link(ctx, ch)
			if err == nil {
				rev, err = h.Broker.Record(ctx, ch, r.ClientID(), info)
			}
			if err != nil {
				h.discardIfEmpty(ch)
				return nil, "", err
			}
		}
		ch.mu.Lock()
		if ch.dead.Load() {
			ch.mu.Unlock()
			continue
		}
		replaced := h.joinLocked(ch, r, info, token, binary, replay, rev)
		ch.mu.Unlock()
		if h.Broker != nil {
			// Announced before the joiner can send anything: its
			// messages follow on the same subject.
			h.Broker.Announce(ch, Event{Kind: EventJoin, ID: r.ClientID(), Info: info, Rev: rev, Binary: binary})
		}
		return ch, replaced, nil
	}
}

func (h *Memory) findOrCreate(name, proto string) *Channel {
	key := chanKey{name, proto}
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.channels[key]
	if ch == nil || ch.dead.Load() {
		// A dead channel still indexed is being removed by its last
		// Leave, which deletes only its own entry: replace it now.
		ch = &Channel{ID: h.lastID.Add(1), Name: name, Protocol: proto}
		h.channels[key] = ch
		h.live.Add(1)
	}
	return ch
}

// joinLocked adds or updates the member, sends JOINED and the replay to it,
// then JOINED to the others. ch.mu must be held.
// rev is the member's record revision in a cluster (its place in the
// cluster-wide join order), 0 in one process.
func (h *Memory) joinLocked(ch *Channel, r Recipient, info protocol.MemberInfo, token string, binary bool, replay Replay, rev uint64) string {
	id := r.ClientID()
	replaced := ""
	self := ch.byID[id]
	if self != nil {
		if self.token != token {
			replaced = self.token
		}
		self.token = token
		ch.setInfoLocked(self, info)
	} else {
		self = &member{r: r, id: id, info: info, token: token, order: rev}
		ch.addLocked(self)
	}

	// The joiner sees everyone when it is an authority or may send to
	// anyone; otherwise the authorities and itself, in join order.
	var visible []protocol.Member
	if info.Auth || info.Mode == protocol.ModeSendToAny {
		visible = make([]protocol.Member, 0, len(ch.members)+len(ch.remote))
		for _, m := range ch.members {
			visible = append(visible, protocol.Member{ID: m.id, Info: m.info})
		}
	} else {
		visible = make([]protocol.Member, 0, len(ch.seers)+1)
		placed := false
		for _, m := range ch.seers {
			if !placed && m.seq > self.seq {
				visible = append(visible, protocol.Member{ID: id, Info: info})
				placed = true
			}
			if m.info.Auth {
				visible = append(visible, protocol.Member{ID: m.id, Info: m.info})
			}
		}
		if !placed {
			visible = append(visible, protocol.Member{ID: id, Info: info})
		}
	}
	if len(ch.remote) > 0 {
		visible = ch.mergeRemoteLocked(visible, info.Auth || info.Mode == protocol.ModeSendToAny)
	}
	selfFrame := protocol.AppendJoinedSelf(make([]byte, 0, 160+64*len(visible)), ch.ID, id, info, ch.Name, ch.Protocol, visible)
	r.Send(Frame{Data: selfFrame, Binary: binary})
	if replay != nil {
		for _, f := range replay(ch) {
			r.Send(f)
		}
	}

	note := Frame{Data: protocol.AppendJoined(make([]byte, 0, 128+len(info.Extra)), ch.ID, id, info), Binary: binary}
	for _, m := range ch.viewersLocked(info) {
		if m.id != id && canSee(m.info.Mode, info) {
			m.r.Send(note)
		}
	}
	return replaced
}

// Leave implements Hub.
func (h *Memory) Leave(r Recipient, ch *Channel, binary bool) (string, bool) {
	id := r.ClientID()
	ch.mu.Lock()
	m := ch.byID[id]
	if m == nil {
		ch.mu.Unlock()
		return "", false
	}
	ch.removeLocked(m)
	empty := len(ch.members) == 0
	if empty {
		// Uncount first: findOrCreate replaces a channel it sees dead
		// (without taking ch.mu), and must never count its replacement
		// while this one still counts.
		h.live.Add(-1)
		ch.dead.Store(true)
	}
	left := protocol.AppendLeft(nil, ch.ID, id)
	r.Send(Frame{Data: left, Binary: binary})
	// Other members get LEFT as text whatever the leaver's frame type, as
	// the reference server does.
	note := Frame{Data: left}
	for _, o := range ch.viewersLocked(m.info) {
		if canSee(o.info.Mode, m.info) {
			o.r.Send(note)
		}
	}
	if empty {
		ch.members, ch.seers, ch.byID = nil, nil, nil
		ch.remote, ch.remoteByID = nil, nil
	}
	ch.mu.Unlock()

	if empty {
		h.unindex(ch)
	}
	if h.Broker != nil {
		// Deleted before the leave is announced, so an instance
		// subscribing meanwhile does not read a member already gone.
		// Best effort: a record left behind is skipped by readers once
		// this instance's lease ends.
		ctx, cancel := context.WithTimeout(context.Background(), brokerTimeout)
		h.Broker.Forget(ctx, ch, id)
		cancel()
		h.Broker.Announce(ch, Event{Kind: EventLeave, ID: id})
		if empty {
			h.Broker.Unsubscribe(ch)
		}
	}
	return m.token, true
}

// brokerTimeout bounds the shared-state writes of a leave, which has no
// caller's context.
const brokerTimeout = 5 * time.Second

// unindex removes ch, emptied, from the index.
func (h *Memory) unindex(ch *Channel) {
	key := chanKey{ch.Name, ch.Protocol}
	h.mu.Lock()
	if h.channels[key] == ch {
		delete(h.channels, key)
	}
	h.mu.Unlock()
}

// SetExtra implements Hub.
func (h *Memory) SetExtra(ctx context.Context, ch *Channel, id int64, extra []byte, binary bool) (bool, error) {
	if h.Broker == nil {
		return h.setExtra(ch, id, extra, binary), nil
	}
	ch.mu.RLock()
	rm, local := ch.remoteByID[id], ch.byID[id] != nil
	var home uint64
	if rm != nil {
		home = rm.node
	}
	ch.mu.RUnlock()
	switch {
	case rm != nil: // its home instance applies and announces it
		return h.Broker.SetExtra(ctx, ch, home, id, extra, binary)
	case !local:
		return false, nil
	}
	if !h.setExtra(ch, id, extra, binary) {
		return false, nil
	}
	info, ok := h.Member(ch, id)
	if !ok {
		return true, nil // left meanwhile; its leave is announced
	}
	rev, err := h.Broker.Record(ctx, ch, id, info)
	if err != nil {
		return true, err
	}
	h.Broker.Announce(ch, Event{Kind: EventExtra, ID: id, Info: protocol.MemberInfo{Extra: extra}, Rev: rev, Binary: binary})
	return true, nil
}

// setExtra is SetExtra on a local member.
func (h *Memory) setExtra(ch *Channel, id int64, extra []byte, binary bool) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	target := ch.byID[id]
	if target == nil {
		return false
	}
	target.info.Extra = extra
	f := Frame{Data: protocol.AppendSetExtra(make([]byte, 0, 96+len(extra)), ch.ID, id, extra), Binary: binary}
	for _, m := range ch.members {
		if m.id == id || canSee(m.info.Mode, target.info) {
			m.r.Send(f)
		}
	}
	return true
}

// Held implements Hub.
func (h *Memory) Held(ch *Channel, id int64) (string, protocol.MemberInfo, bool) {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	if m := ch.byID[id]; m != nil {
		return m.token, m.info, true
	}
	return "", protocol.MemberInfo{}, false
}

// Member implements Hub.
func (h *Memory) Member(ch *Channel, id int64) (protocol.MemberInfo, bool) {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	if m := ch.byID[id]; m != nil {
		return m.info, true
	}
	if rm := ch.remoteByID[id]; rm != nil {
		return rm.info, true
	}
	return protocol.MemberInfo{}, false
}

// Members implements Hub.
func (h *Memory) Members(ch *Channel) []protocol.Member {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	out := make([]protocol.Member, len(ch.members), len(ch.members)+len(ch.remote))
	for i, m := range ch.members {
		out[i] = protocol.Member{ID: m.id, Info: m.info}
	}
	for _, m := range ch.remote {
		out = append(out, protocol.Member{ID: m.id, Info: m.info})
	}
	return out
}

// Lookup implements Hub.
func (h *Memory) Lookup(name, proto string) *Channel {
	h.mu.Lock()
	ch := h.channels[chanKey{name, proto}]
	h.mu.Unlock()
	if ch == nil || ch.dead.Load() {
		return nil // emptied, about to leave the index
	}
	return ch
}

// Channels implements Hub.
func (h *Memory) Channels() int { return int(h.live.Load()) }
