package hub

import (
	"context"
	"sync"
	"testing"

	"github.com/relay-project/relay/relay/protocol"
)

// Members joining and leaving one channel at once, so that it is emptied
// and recreated over and over: every Join lands in a live channel, a
// channel once emptied is never joined again, and nothing is left at the
// end. Run with -race, this is also the check on the index and channel
// locks.
func TestJoinLeaveChurn(t *testing.T) {
	h := NewMemory(0)
	const workers, rounds = 8, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &recorder{id: int64(w + 1)}
			for range rounds {
				ch, _, _ := h.Join(context.Background(), r, "churn", "p", protocol.MemberInfo{Auth: true, Mode: protocol.ModeSendToAny}, "", false, nil)
				if _, ok := h.Member(ch, r.id); !ok {
					t.Errorf("client %d joined channel %d but is not a member", r.id, ch.ID)
					return
				}
				if h.Channels() != 1 {
					t.Errorf("%d channels while client %d is in one", h.Channels(), r.id)
					return
				}
				if _, ok := h.Leave(r, ch, false); !ok {
					t.Errorf("client %d could not leave channel %d", r.id, ch.ID)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := h.Channels(); n != 0 || h.Lookup("churn", "p") != nil {
		t.Fatalf("%d channels left after everyone left", n)
	}
}
