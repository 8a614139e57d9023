package hub

import (
	"cmp"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/relay-project/relay/relay/protocol"
)

// Channel is one channel's membership. Its exported fields never change.
type Channel struct {
	ID       int64  // the number clients use after JOIN
	Name     string // 1..256 bytes
	Protocol string // 1..64 bytes

	mu      sync.RWMutex
	members []*member         // join order
	byID    map[int64]*member // the same members, by client id
	// seers are the members that matter to a guest (a member that is not
	// an authority and has mode 0 or 1): those told about it (mode 2) and
	// those it sees (authorities), in join order. Joins and leaves of
	// guests, nearly all of them in a big channel, touch only these.
	seers []*member
	joins uint64 // members ever added, for member.seq
	// dead is set (under mu) when the channel is emptied, just before it
	// leaves the index; the index reads it under Memory.mu alone, hence
	// atomic.
	dead atomic.Bool

	// With a Broker: the other instances' members, in the order this
	// instance learned of them, kept apart from the local ones so the
	// fan-out loop stays as it is. "Empty" means no local members.
	remote     []*remoteMember
	remoteByID map[int64]*remoteMember
	loaded     bool             // the members read at subscription are in
	gone       map[int64]uint64 // leaves seen before loaded, by revision
	linkOnce   sync.Once        // subscribes the channel (Memory.link)
	linkErr    error            // the subscription's outcome
	Link       atomic.Value     // the Broker's own state for the channel
}

type member struct {
	r     Recipient
	id    int64
	seq   uint64 // join order within the channel
	order uint64 // in a cluster: the record revision of its join, a cluster-wide order
	info  protocol.MemberInfo
	token string
}

// isSeer reports whether a member with info belongs in Channel.seers.
func isSeer(info protocol.MemberInfo) bool {
	return info.Auth || info.Mode == protocol.ModeSendToAny
}

// addLocked appends a new member. ch.mu must be held.
func (ch *Channel) addLocked(m *member) {
	if ch.byID == nil {
		ch.byID = map[int64]*member{}
	}
	ch.joins++
	m.seq = ch.joins
	ch.members = append(ch.members, m)
	ch.byID[m.id] = m
	if isSeer(m.info) {
		ch.seers = append(ch.seers, m)
	}
}

// removeLocked removes member m. ch.mu must be held.
func (ch *Channel) removeLocked(m *member) {
	ch.members = without(ch.members, m)
	if isSeer(m.info) {
		ch.seers = without(ch.seers, m)
	}
	delete(ch.byID, m.id)
}

// setInfoLocked replaces m's info, keeping seers right. ch.mu must be held.
func (ch *Channel) setInfoLocked(m *member, info protocol.MemberInfo) {
	was := isSeer(m.info)
	m.info = info
	if isSeer(info) != was {
		// A member re-joining with another mode: rare, rebuild.
		ch.seers = ch.seers[:0]
		for _, o := range ch.members {
			if isSeer(o.info) {
				ch.seers = append(ch.seers, o)
			}
		}
	}
}

// addRemoteLocked appends another instance's member. ch.mu must be held.
func (ch *Channel) addRemoteLocked(rm *remoteMember) {
	if ch.remoteByID == nil {
		ch.remoteByID = map[int64]*remoteMember{}
	}
	ch.remote = append(ch.remote, rm)
	ch.remoteByID[rm.id] = rm
}

// removeRemoteLocked removes another instance's member. ch.mu must be
// held.
func (ch *Channel) removeRemoteLocked(rm *remoteMember) {
	for i, o := range ch.remote {
		if o == rm {
			ch.remote = append(ch.remote[:i], ch.remote[i+1:]...)
			break
		}
	}
	delete(ch.remoteByID, rm.id)
}

// mergeRemoteLocked returns visible, a joiner's list of local members in
// join order, with the other instances' members it may see (every one when
// all, else the authorities) merged in by the cluster-wide join order.
// ch.mu must be held.
func (ch *Channel) mergeRemoteLocked(visible []protocol.Member, all bool) []protocol.Member {
	rs := make([]*remoteMember, 0, len(ch.remote))
	for _, m := range ch.remote {
		if all || m.info.Auth {
			rs = append(rs, m)
		}
	}
	if len(rs) == 0 {
		return visible
	}
	slices.SortStableFunc(rs, func(a, b *remoteMember) int { return cmp.Compare(a.order, b.order) })
	out := make([]protocol.Member, 0, len(visible)+len(rs))
	i := 0
	for _, v := range visible {
		var o uint64
		if m := ch.byID[v.ID]; m != nil {
			o = m.order
		}
		for ; i < len(rs) && rs[i].order < o; i++ {
			out = append(out, protocol.Member{ID: rs[i].id, Info: rs[i].info})
		}
		out = append(out, v)
	}
	for ; i < len(rs); i++ {
		out = append(out, protocol.Member{ID: rs[i].id, Info: rs[i].info})
	}
	return out
}

// without removes m from s, keeping the order.
func without(s []*member, m *member) []*member {
	for i, o := range s {
		if o == m {
			copy(s[i:], s[i+1:])
			s[len(s)-1] = nil
			return s[:len(s)-1]
		}
	}
	return s
}

// canSee reports whether a member with mode viewerMode is told about a
// member with info subject: everyone sees authorities; only members with
// mode 2 (authorities included) see the others.
func canSee(viewerMode int, subject protocol.MemberInfo) bool {
	return subject.Auth || viewerMode == protocol.ModeSendToAny
}

// viewersLocked returns the members that may have to be told about a
// member with info: everyone for an authority, else only the seers (canSee
// still decides for each). ch.mu must be held.
func (ch *Channel) viewersLocked(info protocol.MemberInfo) []*member {
	if info.Auth {
		return ch.members
	}
	return ch.seers
}
