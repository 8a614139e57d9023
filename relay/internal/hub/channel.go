package hub

import (
	"sync"

	"github.com/relay-project/relay/relay/protocol"
)

// Channel is one channel's membership. Its exported fields never change.
type Channel struct {
	ID       int64  // the number clients use after JOIN
	Name     string // 1..256 bytes
	Protocol string // 1..64 bytes

	mu      sync.RWMutex
	members []*member // join order
	dead    bool      // emptied and removed from the index
}

type member struct {
	r     Recipient
	id    int64
	info  protocol.MemberInfo
	token string
}

// findLocked returns the index of member id, or -1. ch.mu must be held.
func (ch *Channel) findLocked(id int64) int {
	for i, m := range ch.members {
		if m.id == id {
			return i
		}
	}
	return -1
}

// canSee reports whether a member with mode viewerMode is told about a
// member with info subject: everyone sees authorities; only members with
// mode 2 (authorities included) see the others.
func canSee(viewerMode int, subject protocol.MemberInfo) bool {
	return subject.Auth || viewerMode == protocol.ModeSendToAny
}
