package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/relay-project/relay/relay/protocol"
)

// recorder keeps every frame it is sent.
type recorder struct {
	id     int64
	frames [][]byte
}

func (r *recorder) ClientID() int64 { return r.id }
func (r *recorder) Send(f Frame) bool {
	r.frames = append(r.frames, f.Data)
	return true
}

// TestVisibilityModel drives random joins (every mix of authority and
// mode), re-joins with another mode, SET_EXTRAs and leaves, and checks after each step
// who was told and what the joiner's client list holds against the
// protocol's rule applied to the whole membership in join order: the hub
// keeps an index of the members that matter to guests, and it must agree
// with the plain rule.
func TestVisibilityModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	infos := []protocol.MemberInfo{
		{Auth: true, Mode: protocol.ModeSendToAny},
		{Mode: protocol.ModeRecvOnly},
		{Mode: protocol.ModeSendToAuths},
		{Mode: protocol.ModeSendToAny},
	}
	h := NewMemory(0)
	recs := make([]*recorder, 40)
	for i := range recs {
		recs[i] = &recorder{id: int64(i + 1)}
	}
	type entry struct {
		id   int64
		info protocol.MemberInfo
	}
	var model []entry // members in join order
	find := func(id int64) int {
		return slices.IndexFunc(model, func(e entry) bool { return e.id == id })
	}
	var ch *Channel
	for step := range 3000 {
		r := recs[rng.IntN(len(recs))]
		for _, o := range recs {
			o.frames = nil
		}
		if i := find(r.id); i >= 0 && rng.IntN(5) == 0 {
			// SET_EXTRA: told are the members that may see the target,
			// the target itself under the same rule (no exception).
			target := model[i].info
			if ok, _ := h.SetExtra(context.Background(), ch, r.id, []byte(fmt.Sprintf(`{"step":%d}`, step)), false); !ok {
				t.Fatalf("step %d: SET_EXTRA on a member failed", step)
			}
			var want []int64
			for _, e := range model {
				if target.Auth || e.info.Auth || e.info.Mode == protocol.ModeSendToAny {
					want = append(want, e.id)
				}
			}
			checkTold(t, step, recs, want)
			continue
		}
		if i := find(r.id); i >= 0 && rng.IntN(3) == 0 {
			// Leave: the leaver and those who may see it are told.
			info := model[i].info
			model = slices.Delete(model, i, i+1)
			if _, ok := h.Leave(r, ch, false); !ok {
				t.Fatalf("step %d: leave of a member failed", step)
			}
			want := []int64{r.id}
			for _, e := range model {
				if canSee(e.info.Mode, info) {
					want = append(want, e.id)
				}
			}
			checkTold(t, step, recs, want)
			if len(model) == 0 {
				ch = nil
			}
			continue
		}
		info := infos[rng.IntN(len(infos))]
		if i := find(r.id); i >= 0 {
			model[i].info = info // re-join keeps the position
		} else {
			model = append(model, entry{r.id, info})
		}
		ch, _, _ = h.Join(context.Background(), r, "c", "p", info, "", false, nil)
		// The joiner's own copy lists what it may see, in join order.
		var want []string
		for _, e := range model {
			if info.Auth || info.Mode == protocol.ModeSendToAny || e.info.Auth || e.id == r.id {
				want = append(want, fmt.Sprint(e.id))
			}
		}
		if len(r.frames) == 0 {
			t.Fatalf("step %d: joiner got nothing", step)
		}
		if got := clientKeys(t, r.frames[0]); !slices.Equal(got, want) {
			t.Fatalf("step %d: joiner %d (%+v) sees %v, want %v", step, r.id, info, got, want)
		}
		told := []int64{r.id}
		for _, e := range model {
			if e.id != r.id && canSee(e.info.Mode, info) {
				told = append(told, e.id)
			}
		}
		checkTold(t, step, recs, told)
	}
}

// clientKeys returns the keys of a JOINED frame's clients object in order.
func clientKeys(t *testing.T, frame []byte) []string {
	t.Helper()
	var v struct {
		Clients json.RawMessage `json:"clients"`
	}
	if err := json.Unmarshal(frame, &v); err != nil {
		t.Fatalf("bad frame %s: %v", frame, err)
	}
	d := json.NewDecoder(bytes.NewReader(v.Clients))
	var keys []string
	if _, err := d.Token(); err != nil { // {
		t.Fatal(err)
	}
	for d.More() {
		k, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func checkTold(t *testing.T, step int, recs []*recorder, want []int64) {
	t.Helper()
	var got []int64
	for _, r := range recs {
		if len(r.frames) > 1 {
			t.Fatalf("step %d: client %d got %d frames", step, r.id, len(r.frames))
		}
		if len(r.frames) == 1 {
			got = append(got, r.id)
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("step %d: told %v, want %v", step, got, want)
	}
}
