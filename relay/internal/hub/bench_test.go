package hub

import (
	"context"
	"fmt"
	"testing"

	"github.com/relay-project/relay/relay/protocol"
)

// queueRecipient stands in for a connection: Send appends to a queue, as
// the relay's client does, and the queue is recycled as a writer would.
type queueRecipient struct {
	id    int64
	queue []Frame
}

func (q *queueRecipient) ClientID() int64 { return q.id }

func (q *queueRecipient) Send(f Frame) bool {
	if len(q.queue) == 64 {
		clear(q.queue)
		q.queue = q.queue[:0]
	}
	q.queue = append(q.queue, f)
	return true
}

// BenchmarkBroadcast fans one encoded frame out to N members. Allocations
// per broadcast must not grow with N.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			h := NewMemory(0)
			var ch *Channel
			auth := protocol.MemberInfo{Auth: true, Mode: protocol.ModeSendToAny}
			for i := range n {
				r := &queueRecipient{id: int64(i + 1), queue: make([]Frame, 0, 64)}
				info := protocol.MemberInfo{Mode: protocol.ModeRecvOnly, Extra: []byte("{}")}
				if i == 0 {
					info = auth
				}
				ch, _, _ = h.Join(context.Background(), r, "bench", "bench", info, "", false, nil)
			}
			f := Frame{Data: make([]byte, 200)}
			b.ReportAllocs()
			for b.Loop() {
				if got := h.Broadcast(ch, false, Message{Frame: f}); got != n {
					b.Fatalf("delivered to %d of %d", got, n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// BenchmarkJoinLeave has a receive-only member join and leave a channel of
// N receive-only members and one authority, as every guest of a busy
// channel does. Its allocations must not grow with N: such a joiner sees
// only the authorities.
func BenchmarkJoinLeave(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			h := NewMemory(0)
			guest := protocol.MemberInfo{Mode: protocol.ModeRecvOnly, Extra: []byte("{}")}
			var ch *Channel
			for i := range n {
				info := guest
				if i == 0 {
					info = protocol.MemberInfo{Auth: true, Mode: protocol.ModeSendToAny}
				}
				ch, _, _ = h.Join(context.Background(), &queueRecipient{id: int64(i + 1), queue: make([]Frame, 0, 64)}, "bench", "bench", info, "", false, nil)
			}
			r := &queueRecipient{id: int64(n + 1), queue: make([]Frame, 0, 64)}
			b.ReportAllocs()
			for b.Loop() {
				h.Join(context.Background(), r, "bench", "bench", guest, "", false, nil)
				if _, ok := h.Leave(r, ch, false); !ok {
					b.Fatal("not a member")
				}
			}
		})
	}
}
