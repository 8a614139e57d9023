package cluster_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay/internal/cluster"
	"github.com/relay-project/relay/relay/internal/cluster/natstest"
	"github.com/relay-project/relay/relay/internal/hub"
	"github.com/relay-project/relay/relay/protocol"
)

// slowMember takes a while over every frame, as a busy instance would,
// and records whether it was closed for a gap.
type slowMember struct {
	recorder
	gap atomic.Bool
}

func (m *slowMember) Send(f hub.Frame) bool {
	time.Sleep(100 * time.Microsecond)
	return m.recorder.Send(f)
}
func (m *slowMember) CloseGap() { m.gap.Store(true) }

// Events dropped because an instance is behind are never hidden, even an
// HTTP publish through an instance with no member in the channel (which
// carries no sequence number to check): the channel's members there are
// closed with 1013, and the gap is counted.
func TestDroppedEventsCloseTheMembers(t *testing.T) {
	srv := natstest.Start(t)
	_, _, pub := startHub(t, testConfig(srv))
	cfg := testConfig(srv)
	cfg.EventInbox = 16
	behind, h, b := startHub(t, cfg)
	m := &slowMember{recorder: recorder{id: 1}}
	waitFor(t, 5*time.Second, "the instance ready", behind.Ready)
	if _, _, err := h.Join(context.Background(), m, "c", "p", protocol.MemberInfo{Mode: 2}, "", false, nil); err != nil {
		t.Fatal(err)
	}

	const sent = 2000
	for range sent {
		pub.Publish("c", "p", hub.Event{Kind: hub.EventMessage, To: -1, Tail: []byte(`"cmd":"x"}`)}, nil)
	}
	waitFor(t, 10*time.Second, "the member closed for the dropped events", m.gap.Load)
	if got := b.Stats().Gaps; got < 1 {
		t.Fatalf("gaps counted: %d, want at least 1", got)
	}
	time.Sleep(200 * time.Millisecond)
	if got := m.count(); got >= sent {
		t.Fatalf("the member got %d of %d: nothing was dropped, the test proves nothing", got, sent)
	}
}

// An instance's own events are not sent back to it: broadcasting into a
// channel shared with another instance costs the sender one message out
// per event and nothing in.
func TestOwnEventsAreNotEchoed(t *testing.T) {
	srv := natstest.Start(t)
	var nodes []*cluster.Node
	var hubs []*hub.Memory
	var chans []*hub.Channel
	for i := range 2 {
		node, h, _ := startHub(t, testConfig(srv))
		ch, _, err := h.Join(context.Background(), &recorder{id: int64(i + 1)}, "c", "p", protocol.MemberInfo{Auth: true, Mode: 2}, "", false, nil)
		if err != nil {
			t.Fatal(err)
		}
		nodes, hubs, chans = append(nodes, node), append(hubs, h), append(chans, ch)
	}
	in0, out0 := nodes[0].Messages()
	const sent = 500
	frame := []byte(`{"channel":1,"success":true,"from":1,"cmd":"x"}`)
	tail := len(`{"channel":1,"success":true,"from":1,`)
	for range sent {
		hubs[0].Broadcast(chans[0], false, hub.Message{Frame: hub.Frame{Data: frame}, From: 1, Tail: tail})
	}
	waitFor(t, 5*time.Second, "every event out", func() bool { _, out := nodes[0].Messages(); return out-out0 >= sent })
	time.Sleep(100 * time.Millisecond)
	if in, _ := nodes[0].Messages(); in-in0 > sent/10 {
		t.Fatalf("the sender received %d messages while sending %d events: its own came back", in-in0, sent)
	}
}
