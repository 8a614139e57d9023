package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relay-project/relay/relay/internal/cluster"
	"github.com/relay-project/relay/relay/internal/cluster/natstest"
	"github.com/relay-project/relay/relay/internal/hub"
	"github.com/relay-project/relay/relay/protocol"
)

// recorder is a member's connection that keeps what it is sent.
type recorder struct {
	id int64
	mu sync.Mutex
	fs [][]byte
}

func (r *recorder) ClientID() int64 { return r.id }
func (r *recorder) Send(f hub.Frame) bool {
	r.mu.Lock()
	r.fs = append(r.fs, f.Data)
	r.mu.Unlock()
	return true
}
func (r *recorder) take() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	fs := r.fs
	r.fs = nil
	return fs
}
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.fs)
}

// startHubs starts n instances' hubs on srv, each with its broker.
func startHubs(t *testing.T, srv *natstest.Server, n int) []*hub.Memory {
	var hubs []*hub.Memory
	for range n {
		_, h, _ := startHub(t, testConfig(srv))
		hubs = append(hubs, h)
	}
	return hubs
}

// startHub starts one instance for cfg: its node, and a hub with its
// broker, closed when the test ends.
func startHub(t *testing.T, cfg cluster.Config) (*cluster.Node, *hub.Memory, *cluster.Broker) {
	t.Helper()
	node := startNode(t, cfg)
	h := hub.NewMemory(0)
	b, err := cluster.NewBroker(node, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	h.Broker = b
	return node, h, b
}

// The visibility model with members on three instances: random joins
// (every mix of authority and mode), re-joins with another mode and
// leaves; after each step, who was told (exactly once) and the joiner's
// client list match the protocol's rule applied to the whole membership,
// wherever each member is.
func TestVisibilityModelAcrossInstances(t *testing.T) {
	srv := natstest.Start(t)
	hubs := startHubs(t, srv, 3)
	rng := rand.New(rand.NewPCG(3, 4))
	infos := []protocol.MemberInfo{
		{Auth: true, Mode: protocol.ModeSendToAny},
		{Mode: protocol.ModeRecvOnly},
		{Mode: protocol.ModeSendToAuths},
		{Mode: protocol.ModeSendToAny},
	}
	canSee := func(viewerMode int, subject protocol.MemberInfo) bool {
		return subject.Auth || viewerMode == protocol.ModeSendToAny
	}
	recs := make([]*recorder, 18)
	for i := range recs {
		recs[i] = &recorder{id: int64(i + 1)}
	}
	home := func(r *recorder) *hub.Memory { return hubs[int(r.id)%len(hubs)] }
	model := map[int64]protocol.MemberInfo{}
	chans := map[int64]*hub.Channel{}
	ctx := context.Background()

	// expect waits until exactly the recorders in want got one frame each
	// and nobody else got any.
	expect := func(step int, want []int64) [][]byte {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for _, id := range want {
			for recs[id-1].count() < 1 {
				if time.Now().After(deadline) {
					t.Fatalf("step %d: client %d was not told", step, id)
				}
				time.Sleep(time.Millisecond)
			}
		}
		time.Sleep(30 * time.Millisecond) // room for a wrong or second frame
		var first [][]byte
		for _, r := range recs {
			fs := r.take()
			if slices.Contains(want, r.id) != (len(fs) == 1) || len(fs) > 1 {
				t.Fatalf("step %d: client %d got %d frames (%q), want %v told", step, r.id, len(fs), fs, want)
			}
			if len(want) > 0 && r.id == want[0] {
				first = fs
			}
		}
		return first
	}

	for step := range 250 {
		r := recs[rng.IntN(len(recs))]
		if info, ok := model[r.id]; ok && rng.IntN(3) == 0 {
			delete(model, r.id)
			if _, ok := home(r).Leave(r, chans[r.id], false); !ok {
				t.Fatalf("step %d: leave failed", step)
			}
			want := []int64{r.id}
			for id, o := range model {
				if canSee(o.Mode, info) {
					want = append(want, id)
				}
			}
			expect(step, want)
			continue
		}
		info := infos[rng.IntN(len(infos))]
		model[r.id] = info
		ch, _, err := home(r).Join(ctx, r, "c", "p", info, "", false, nil)
		if err != nil {
			t.Fatalf("step %d: join: %v", step, err)
		}
		chans[r.id] = ch
		want := []int64{r.id}
		var list []string
		for id, o := range model {
			if id != r.id && canSee(o.Mode, info) {
				want = append(want, id)
			}
			if info.Auth || info.Mode == protocol.ModeSendToAny || o.Auth || id == r.id {
				list = append(list, fmt.Sprint(id))
			}
		}
		fs := expect(step, want)
		var joined struct {
			Clients map[string]json.RawMessage `json:"clients"`
		}
		if err := json.Unmarshal(fs[0], &joined); err != nil {
			t.Fatal(err)
		}
		var got []string
		for id := range joined.Clients {
			got = append(got, id)
		}
		slices.Sort(got)
		slices.Sort(list)
		if !slices.Equal(got, list) {
			t.Fatalf("step %d: joiner %d (%+v) on instance %d lists %v, want %v", step, r.id, info, int(r.id)%len(hubs), got, list)
		}
	}
}

// A dead instance's member records are swept once its lease ends, so the
// shared state does not keep them for ever.
func TestDeadInstanceRecordsAreSwept(t *testing.T) {
	srv := natstest.Start(t)
	survivor := startNode(t, testConfig(srv))
	hs := hub.NewMemory(0)
	bs, err := cluster.NewBroker(survivor, hs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bs.Close)
	hs.Broker = bs
	doomed := startNode(t, testConfig(srv))
	hd := hub.NewMemory(0)
	bd, err := cluster.NewBroker(doomed, hd)
	if err != nil {
		t.Fatal(err)
	}
	hd.Broker = bd
	for i := range 3 {
		if _, _, err := hd.Join(context.Background(), &recorder{id: int64(100 + i)}, "c", "p", protocol.MemberInfo{Auth: true, Mode: 2}, "", false, nil); err != nil {
			t.Fatal(err)
		}
	}
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), "t_members")
	if err != nil {
		t.Fatal(err)
	}
	records := func() int {
		keys, err := kv.ListKeysFiltered(context.Background(), "*."+fmt.Sprint(doomed.ID())+".*")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for range keys.Keys() {
			n++
		}
		return n
	}
	if n := records(); n != 3 {
		t.Fatalf("%d records of the doomed instance, want 3", n)
	}
	bd.Close()
	doomed.Crash()
	deadline := time.Now().Add(testConfig(srv).NodeTTL + 5*time.Second)
	for records() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d records of the dead instance left", records())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
