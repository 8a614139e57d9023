package hub

import (
	"context"

	"github.com/relay-project/relay/relay/protocol"
)

// The broker link: what Memory does when other instances share its
// channels. Without a Broker (one process) none of this runs.

// Broker links a Memory to the other instances of a cluster; package
// internal/cluster implements it. Memory calls it without holding any
// lock, and every method that takes a context may wait on the network.
type Broker interface {
	// Subscribe starts delivering ch's events from the other instances
	// (through Memory.ApplyRemote) and loads ch's remote members (through
	// Memory.LoadRemote). Memory calls it once per channel, before the
	// channel's first local member joins.
	Subscribe(ctx context.Context, ch *Channel) error
	// Unsubscribe stops ch's events, after its last local member left.
	Unsubscribe(ch *Channel)
	// Record writes local member id's record (its info), which the other
	// instances read when they subscribe, before the member is announced,
	// and returns the record's revision.
	Record(ctx context.Context, ch *Channel, id int64, info protocol.MemberInfo) (rev uint64, err error)
	// Forget deletes member id's record, before its leave is announced.
	Forget(ctx context.Context, ch *Channel, id int64) error
	// Announce publishes ev on ch's subject. It never waits on the
	// network; events of one channel from one instance arrive everywhere
	// in the order they were announced.
	Announce(ch *Channel, ev Event)
	// SetExtra asks member id's home instance (node) to replace its extra.
	// It returns false when id is not a member there.
	SetExtra(ctx context.Context, ch *Channel, node uint64, id int64, extra []byte, binary bool) (bool, error)
}

// EventKind says what an Event is.
type EventKind uint8

// Event kinds.
const (
	EventJoin    EventKind = iota + 1 // a member joined or re-joined
	EventLeave                        // a member left
	EventExtra                        // a member's extra changed
	EventMessage                      // an application message, or the relay's (ID 0)
)

// Event is one change or message of a channel, as it travels between
// instances.
type Event struct {
	Kind EventKind
	// ID is the member that joined, left or changed, or a message's sender
	// (0: the relay itself).
	ID   int64
	Info protocol.MemberInfo // EventJoin; EventExtra uses Info.Extra
	Rev  uint64              // the member record's revision (join, extra, leave)
	// To is a message's target member, or -1 for every member.
	To       int64
	AuthOnly bool   // a broadcast for authorities only
	Binary   bool   // send as binary frames
	Tail     []byte // EventMessage: the frame from `"cmd":` on
}

// RemoteMember is a member of another instance, as loaded when a channel
// is subscribed.
type RemoteMember struct {
	Node uint64
	ID   int64
	Info protocol.MemberInfo
	Rev  uint64
}

// Closer is a Recipient the hub can close, with close code 1013, when the
// cluster lost events of one of its channels.
type Closer interface {
	CloseGap()
}

// remoteMember is another instance's member in a channel's replica.
type remoteMember struct {
	node  uint64
	id    int64
	rev   uint64 // of the latest record applied
	order uint64 // the revision it was first known by: its place in join order
	info  protocol.MemberInfo
}

// link subscribes ch before its first local member joins, once; every
// joiner waits for the outcome. A channel whose subscription failed is
// discarded, so the next JOIN tries again.
func (h *Memory) link(ctx context.Context, ch *Channel) error {
	ch.linkOnce.Do(func() { ch.linkErr = h.Broker.Subscribe(ctx, ch) })
	if ch.linkErr != nil {
		h.discardIfEmpty(ch)
	}
	return ch.linkErr
}

// discardIfEmpty removes ch when it has no local members: a JOIN that
// created it failed.
func (h *Memory) discardIfEmpty(ch *Channel) {
	ch.mu.Lock()
	empty := len(ch.members) == 0 && !ch.dead.Load()
	if empty {
		h.live.Add(-1)
		ch.dead.Store(true)
	}
	ch.mu.Unlock()
	if empty {
		h.unindex(ch)
	}
}

// LoadRemote adds members read from the shared state when ch was
// subscribed, silently (nobody local has been told anything yet). A member
// already known at this revision or later, or whose leave arrived while
// the members were being read, is skipped.
func (h *Memory) LoadRemote(ch *Channel, members []RemoteMember) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, m := range members {
		if gone, ok := ch.gone[m.ID]; ok && gone >= m.Rev {
			continue
		}
		if rm := ch.remoteByID[m.ID]; rm != nil {
			if rm.rev < m.Rev {
				rm.info, rm.rev = m.Info, m.Rev
			}
			continue
		}
		ch.addRemoteLocked(&remoteMember{node: m.Node, id: m.ID, rev: m.Rev, order: m.Rev, info: m.Info})
	}
	ch.gone = nil
	ch.loaded = true
}

// ApplyRemote applies another instance's event to ch, telling the local
// members what the protocol says they are told, with the same visibility
// code as local changes.
func (h *Memory) ApplyRemote(ch *Channel, node uint64, ev Event) {
	if ev.Kind == EventMessage {
		h.Deliver(ch, ev)
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.dead.Load() {
		return
	}
	rm := ch.remoteByID[ev.ID]
	switch ev.Kind {
	case EventJoin:
		if rm != nil && rm.rev >= ev.Rev {
			return // already known: no second JOINED
		}
		if rm == nil {
			rm = &remoteMember{node: node, id: ev.ID, order: ev.Rev}
			ch.addRemoteLocked(rm)
		}
		delete(ch.gone, ev.ID) // joined again after a leave
		rm.info, rm.rev = ev.Info, ev.Rev
		note := Frame{Data: protocol.AppendJoined(make([]byte, 0, 128+len(ev.Info.Extra)), ch.ID, ev.ID, ev.Info), Binary: ev.Binary}
		for _, m := range ch.viewersLocked(ev.Info) {
			if canSee(m.info.Mode, ev.Info) {
				m.r.Send(note)
			}
		}
	case EventLeave:
		if !ch.loaded {
			// Any record of id being read now predates the leave
			// (records are deleted before leaves are announced).
			if ch.gone == nil {
				ch.gone = map[int64]uint64{}
			}
			ch.gone[ev.ID] = ^uint64(0)
		}
		if rm == nil {
			return
		}
		ch.removeRemoteLocked(rm)
		h.toldLeftLocked(ch, ev.ID, rm.info)
	case EventExtra:
		if rm == nil || rm.rev >= ev.Rev {
			return
		}
		rm.info.Extra, rm.rev = ev.Info.Extra, ev.Rev
		f := Frame{Data: protocol.AppendSetExtra(make([]byte, 0, 96+len(ev.Info.Extra)), ch.ID, ev.ID, ev.Info.Extra), Binary: ev.Binary}
		for _, m := range ch.members {
			if canSee(m.info.Mode, rm.info) {
				m.r.Send(f)
			}
		}
	}
}

// toldLeftLocked sends LEFT for member id (info) to the local members
// allowed to see it, as text. ch.mu must be held.
func (h *Memory) toldLeftLocked(ch *Channel, id int64, info protocol.MemberInfo) {
	note := Frame{Data: protocol.AppendLeft(nil, ch.ID, id)}
	for _, o := range ch.viewersLocked(info) {
		if canSee(o.info.Mode, info) {
			o.r.Send(note)
		}
	}
}

// Deliver queues a message event (another instance's, or an HTTP
// publish's) for the local members it is for, encoded once with this
// instance's channel number, and returns how many it was queued for.
func (h *Memory) Deliver(ch *Channel, ev Event) int {
	data := protocol.AppendMessageHead(make([]byte, 0, 48+len(ev.Tail)), ch.ID, ev.ID)
	f := Frame{Data: append(data, ev.Tail...), Binary: ev.Binary}
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	if ev.To >= 0 {
		if m := ch.byID[ev.To]; m != nil && m.r.Send(f) {
			return 1
		}
		return 0
	}
	n := 0
	for _, m := range ch.members {
		if (!ev.AuthOnly || m.info.Auth) && m.r.Send(f) {
			n++
		}
	}
	return n
}

// NodeLost removes the members of an instance whose lease ended from every
// channel, telling the local members LEFT as if each had left.
func (h *Memory) NodeLost(node uint64) {
	h.mu.Lock()
	chans := make([]*Channel, 0, len(h.channels))
	for _, ch := range h.channels {
		chans = append(chans, ch)
	}
	h.mu.Unlock()
	for _, ch := range chans {
		ch.mu.Lock()
		for _, rm := range append([]*remoteMember(nil), ch.remote...) {
			if rm.node == node {
				ch.removeRemoteLocked(rm)
				h.toldLeftLocked(ch, rm.id, rm.info)
			}
		}
		ch.mu.Unlock()
	}
}

// HasRemote reports whether ch has members on other instances.
func (h *Memory) HasRemote(ch *Channel) bool {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	return len(ch.remote) > 0
}

// LocalMembers returns ch's members on this instance, in join order.
func (h *Memory) LocalMembers(ch *Channel) []protocol.Member {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	out := make([]protocol.Member, len(ch.members))
	for i, m := range ch.members {
		out[i] = protocol.Member{ID: m.id, Info: m.info}
	}
	return out
}

// Gap closes ch's local members (with 1013, so they rejoin): events of ch
// from another instance were lost, and they may have missed some.
func (h *Memory) Gap(ch *Channel) int {
	ch.mu.RLock()
	defer ch.mu.RUnlock()
	n := 0
	for _, m := range ch.members {
		if c, ok := m.r.(Closer); ok {
			c.CloseGap()
			n++
		}
	}
	return n
}
