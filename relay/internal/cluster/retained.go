package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relay-project/relay/relay/internal/retain"
)

// Retained is a retain.Store in the cluster's retained bucket: the latest
// message per (channel, protocol, cmd), each key expiring with its message
// (a per-key TTL). The bucket holds at most RELAY_RETAIN_MAX_MESSAGES
// messages and RELAY_RETAIN_MAX_BYTES bytes (as JetStream counts them,
// headers included); a publish that does not fit gets retain.ErrFull.
type Retained struct{ n *Node }

var _ retain.Store = Retained{}

// Retained returns the node's retained-message store.
func (n *Node) Retained() Retained { return Retained{n} }

type retainedRecord struct {
	Cmd       string `json:"c"`
	Fields    string `json:"f,omitempty"`
	Published int64  `json:"p"` // Unix ns
	Expires   int64  `json:"e"` // Unix ns
}

func (r retainedRecord) message() retain.Message {
	return retain.Message{Cmd: r.Cmd, Fields: []byte(r.Fields), Published: time.Unix(0, r.Published), Expires: time.Unix(0, r.Expires)}
}

func retainedKey(ck, cmd string) string {
	h := sha256.Sum256([]byte(cmd))
	return ck + "." + base64.RawURLEncoding.EncodeToString(h[:])
}

// jsStoreFailed is JetStream's "store failed" error code, which a bucket
// over its MaxBytes answers.
const jsStoreFailed = 10077

// Put implements retain.Store.
func (r Retained) Put(ctx context.Context, name, protocol, cmd string, fields []byte, ttl time.Duration) (time.Time, error) {
	defer r.n.since("retained_put", time.Now())
	now := r.n.now()
	m := retain.Message{Cmd: cmd, Fields: fields, Published: now, Expires: now.Add(ttl)}
	if err := r.put(ctx, ChannelKey(name, protocol), m, ttl); err != nil {
		return time.Time{}, err
	}
	return m.Expires, nil
}

// put stores m with a key TTL of ttl (on the server's clock; the exact
// expiry is in the value, on the relay's).
func (r Retained) put(ctx context.Context, ck string, m retain.Message, ttl time.Duration) error {
	val, err := json.Marshal(retainedRecord{Cmd: m.Cmd, Fields: string(m.Fields), Published: m.Published.UnixNano(), Expires: m.Expires.UnixNano()})
	if err != nil {
		return err
	}
	ttl = max(ttl.Round(time.Second)+time.Second, time.Second)
	msg := &nats.Msg{Subject: "$KV." + r.n.cfg.Prefix + "_retained." + retainedKey(ck, m.Cmd), Data: val}
	_, err = r.n.js.PublishMsg(ctx, msg, jetstream.WithMsgTTL(ttl))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jsStoreFailed && strings.Contains(apiErr.Description, "maximum") {
		return retain.ErrFull
	}
	return unavailable(err)
}

// Get implements retain.Store.
func (r Retained) Get(ctx context.Context, name, protocol string) ([]retain.Message, error) {
	return r.read(ctx, ChannelKey(name, protocol))
}

// read returns channel ck's unexpired messages, oldest publish first.
func (r Retained) read(ctx context.Context, ck string) ([]retain.Message, error) {
	if !r.n.Connected() {
		return nil, errDisconnected
	}
	w, err := r.n.retained.Watch(ctx, ck+".*", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, unavailable(err)
	}
	defer w.Stop()
	now := r.n.now()
	var out []retain.Message
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil, unavailable(ctx.Err())
		case e = <-w.Updates():
		}
		if e == nil {
			break
		}
		var rec retainedRecord
		if json.Unmarshal(e.Value(), &rec) != nil || rec.Expires <= now.UnixNano() {
			continue
		}
		out = append(out, rec.message())
	}
	sortRetained(out)
	return out, nil
}

func sortRetained(ms []retain.Message) {
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].Published.Equal(ms[j].Published) {
			return ms[i].Cmd < ms[j].Cmd
		}
		return ms[i].Published.Before(ms[j].Published)
	})
}
