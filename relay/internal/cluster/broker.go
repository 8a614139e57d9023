package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relay-project/relay/relay/internal/hub"
	"github.com/relay-project/relay/relay/internal/retain"
	"github.com/relay-project/relay/relay/protocol"
)

// Broker is the hub.Broker on NATS.
//
// Every event of one channel (joins, leaves, extra changes, messages)
// travels on the channel's one core subject, published on this node's one
// connection, so every receiver gets one instance's events of a channel in
// the order they were announced: a member's JOINED before its first
// message, its messages before its LEFT. Core NATS is at-most-once: each
// envelope carries a sequence number per (instance, channel subscription),
// and a receiver that sees one skipped closes its members of that channel
// with 1013 (cluster gap: rejoin) rather than hide the loss.
//
// Member records (the presence a subscribing instance reads) are written
// before a member is announced and deleted before its leave is announced;
// events carry the record's revision, so the records read at subscription
// and the events that arrive meanwhile merge without a duplicate JOINED.
type Broker struct {
	n  *Node
	h  *hub.Memory
	in chan *nats.Msg // every channel subscription delivers here, in order

	mu    sync.Mutex
	subs  map[*nats.Subscription]*link
	byKey map[string]*link // channel key -> the current link

	nextLink atomic.Uint64
	req      *nats.Subscription
	stop     chan struct{}
	done     sync.WaitGroup
	closed   sync.Once

	// Counters, for metrics.
	evIn, evOut          [hub.EventMessage + 1]atomic.Uint64 // by kind
	gaps, resyncs, drops atomic.Uint64
}

// Stats are the broker's counters since start.
type Stats struct {
	In, Out                map[string]uint64 // events by kind: join, leave, extra, message
	Gaps, Resyncs, Dropped uint64
}

var kindNames = [...]string{hub.EventJoin: "join", hub.EventLeave: "leave", hub.EventExtra: "extra", hub.EventMessage: "message"}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	st := Stats{In: map[string]uint64{}, Out: map[string]uint64{}, Gaps: b.gaps.Load(), Resyncs: b.resyncs.Load(), Dropped: b.drops.Load()}
	for k := hub.EventJoin; k <= hub.EventMessage; k++ {
		st.In[kindNames[k]], st.Out[kindNames[k]] = b.evIn[k].Load(), b.evOut[k].Load()
	}
	return st
}

// link is one channel's subscription on this instance.
type link struct {
	ch      *hub.Channel
	key     string
	subject string
	id      uint64 // tells a re-created subscription's sequence apart
	sub     *nats.Subscription

	mu  sync.Mutex // orders seq and publish
	seq uint64

	last   map[uint64]origin // by node; the dispatcher's alone
	fenced map[uint64]bool   // nodes whose events were ignored as dead's; the dispatcher's alone

	// shared is set when the NATS connection is lost while the channel
	// has members elsewhere: events may be lost both ways, whatever the
	// channel looks like once the connection is back (the others' members
	// may have been removed meanwhile as lost).
	shared atomic.Bool

	rmu      sync.Mutex                // a leaf lock: taken under the hub's channel lock
	retained map[string]retain.Message // by cmd: the channel's retained messages
}

// origin is the last event seen from one instance on a link: its
// subscription, sequence number, and how many times its lease had ended
// by then (an instance back from a lapse starts a new life: the events it
// could not send while it was cut off, and that everyone was told LEFT
// for, are not a gap).
type origin struct{ link, seq, life uint64 }

// inboxSize is how many events can wait for the dispatcher by default;
// past it NATS drops them, and the slow-consumer report closes the
// channel's members (a sequence check alone would miss an HTTP publish
// from an instance with no member there, which carries no sequence).
const inboxSize = 1 << 16

// NewBroker links h to the cluster; set it as h.Broker before h is used.
// The node's lost instances are removed from h's channels.
func NewBroker(n *Node, h *hub.Memory) (*Broker, error) {
	size := n.cfg.EventInbox
	if size <= 0 {
		size = inboxSize
	}
	b := &Broker{n: n, h: h, in: make(chan *nats.Msg, size), subs: map[*nats.Subscription]*link{}, byKey: map[string]*link{}, stop: make(chan struct{})}
	n.onUp(func() {
		// Requests to this instance, once it has a node number.
		sub, err := n.nc.Subscribe(n.cfg.Prefix+".n."+nodeKey(n.id), b.serveRequest)
		if err != nil {
			n.log.Error("cannot serve requests from other instances", "err", err)
			return
		}
		b.mu.Lock()
		b.req = sub
		b.mu.Unlock()
	})
	n.onLost(func(node uint64) {
		h.NodeLost(node)
		b.sweep(node)
	})
	n.onDisconnect(b.markShared)
	n.onReconnect(b.resync)
	n.onLapse(b.gapAll)
	n.onSlow(b.dropped)
	b.done.Add(1)
	go b.dispatch()
	return b, nil
}

// sweep deletes the member records a dead instance left behind (readers
// skip them already: they belong to no live instance). Only the live
// instance with the lowest number does it, so the deletes are not
// repeated by every survivor.
func (b *Broker) sweep(node uint64) {
	if !b.n.lowestLive() {
		return
	}
	if !countUnlessStopped(&b.mu, b.stop, &b.done) {
		return
	}
	go func() {
		defer b.done.Done()
		ctx, cancel := untilStopped(b.stop, 30*time.Second)
		defer cancel()
		keys, err := b.n.members.ListKeysFiltered(ctx, "*."+nodeKey(node)+".*")
		if err != nil {
			b.n.log.Warn("sweeping a lost instance's member records failed", "node", node, "err", err)
			return
		}
		// Only records written before the lease ended, and unchanged
		// since they were read: an instance that took its lease again
		// (it was out of reach, not dead) writes its members anew.
		died, _ := b.n.DiedAt(node)
		n := 0
		for k := range keys.Keys() {
			e, err := b.n.members.Get(ctx, k)
			if err != nil || !e.Created().Before(died) {
				continue
			}
			if b.n.members.Delete(ctx, k, jetstream.LastRevision(e.Revision())) == nil {
				n++
			}
		}
		b.n.log.Info("swept a lost instance's member records", "node", node, "records", n)
	}()
}

// Close stops the broker's goroutines and subscriptions. Calling it again
// does nothing.
func (b *Broker) Close() {
	b.closed.Do(func() {
		b.mu.Lock()
		if b.req != nil {
			b.req.Unsubscribe()
		}
		close(b.stop)
		b.mu.Unlock()
		b.done.Wait()
	})
}

// ChannelKey names channel (name, protocol) in subjects and keys: 43
// characters of [A-Za-z0-9_-], whatever bytes the name and protocol hold.
func ChannelKey(name, protocol string) string {
	h := sha256.New()
	h.Write([]byte("relay/v1\x00"))
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(protocol)))])
	h.Write([]byte(protocol))
	h.Write([]byte(name))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func (b *Broker) linkOf(ch *hub.Channel) *link {
	l, _ := ch.Link.Load().(*link)
	return l
}

// Subscribe implements hub.Broker: subscribe, make sure the server has the
// interest, then read the members' records.
func (b *Broker) Subscribe(ctx context.Context, ch *hub.Channel) error {
	defer b.n.since("subscribe", time.Now())
	if err := b.n.joined(); err != nil {
		return err
	}
	if !b.n.Connected() {
		return errDisconnected // fail fast rather than wait for a reconnect
	}
	key := ChannelKey(ch.Name, ch.Protocol)
	l := &link{ch: ch, key: key, subject: b.n.cfg.Prefix + ".c." + key, id: b.nextLink.Add(1), last: map[uint64]origin{}, fenced: map[uint64]bool{}}
	sub, err := b.n.nc.ChanSubscribe(l.subject, b.in)
	if err != nil {
		return unavailable(err)
	}
	sub.SetPendingLimits(-1, -1) // the inbox bounds it
	l.sub = sub
	b.mu.Lock()
	b.subs[sub] = l
	b.byKey[key] = l
	b.mu.Unlock()
	ch.Link.Store(l)
	fail := func(err error) error {
		b.Unsubscribe(ch)
		return unavailable(err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
	}
	if err := b.n.nc.FlushWithContext(ctx); err != nil {
		return fail(err)
	}
	members, err := b.readMembers(ctx, key)
	if err != nil {
		return fail(err)
	}
	msgs, err := b.n.Retained().read(ctx, key)
	if err != nil {
		return fail(err)
	}
	for _, m := range msgs {
		l.keepRetained(m)
	}
	b.h.LoadRemote(ch, members)
	return nil
}

// keepRetained caches m unless a later publish of its cmd is cached.
func (l *link) keepRetained(m retain.Message) {
	l.rmu.Lock()
	defer l.rmu.Unlock()
	if l.retained == nil {
		l.retained = map[string]retain.Message{}
	}
	if old, ok := l.retained[m.Cmd]; !ok || !old.Published.After(m.Published) {
		l.retained[m.Cmd] = m
	}
}

// RetainedOf returns ch's unexpired retained messages from the cache
// filled at subscription and kept by the events since, oldest first. It
// never waits on the network, so a JOIN's replay may call it under the
// channel's lock.
func (b *Broker) RetainedOf(ch *hub.Channel) []retain.Message {
	l := b.linkOf(ch)
	if l == nil {
		return nil
	}
	now := b.n.now()
	l.rmu.Lock()
	var out []retain.Message
	for cmd, m := range l.retained {
		if !now.Before(m.Expires) {
			delete(l.retained, cmd)
			continue
		}
		out = append(out, m)
	}
	l.rmu.Unlock()
	sortRetained(out)
	return out
}

// Publish announces a message from the relay itself (an HTTP publish) on
// channel (name, protocol), whether or not this instance has members
// there; retained, when not nil, is the message as retained, which every
// instance subscribed to the channel caches for its joiners. The caller
// delivers to the local members. It fails only when this instance is not
// subscribed to the channel and the publish could not be sent (NATS out
// of reach): a subscribed channel's sequence tells the receivers of a
// loss, an unsubscribed one's would not.
func (b *Broker) Publish(name, protocol string, ev hub.Event, retained *retain.Message) error {
	key := ChannelKey(name, protocol)
	b.mu.Lock()
	l := b.byKey[key]
	b.mu.Unlock()
	if l != nil {
		if retained != nil {
			l.keepRetained(*retained)
		}
		b.announce(l, ev, retained)
		return nil
	}
	// Not subscribed here: sent outside any sequence (link 0). A receiver
	// that drops it is told by NATS (the slow-consumer report); a send
	// that fails is reported to the caller.
	if b.n.Fenced() {
		return fmt.Errorf("%w: this instance's lease lapsed", ErrUnavailable)
	}
	return unavailable(b.publish(b.n.cfg.Prefix+".c."+key, ev.Kind, appendEnvelope(nil, b.n.id, 0, 0, ev, retained)))
}

// Members returns the members of channel (name, protocol) on the other
// live instances, read from their records.
func (b *Broker) Members(ctx context.Context, name, protocol string) ([]hub.RemoteMember, error) {
	defer b.n.since("members_read", time.Now())
	ms, err := b.readMembers(ctx, ChannelKey(name, protocol))
	return ms, unavailable(err)
}

// readMembers reads channel key's member records of live instances.
func (b *Broker) readMembers(ctx context.Context, key string) ([]hub.RemoteMember, error) {
	if err := b.n.joined(); err != nil {
		return nil, err
	}
	if !b.n.Connected() {
		return nil, errDisconnected
	}
	w, err := b.n.members.Watch(ctx, key+".>", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, err
	}
	defer w.Stop()
	var out []hub.RemoteMember
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e = <-w.Updates():
		}
		if e == nil {
			return out, nil
		}
		parts := strings.Split(e.Key(), ".")
		if len(parts) != 3 {
			continue
		}
		node, err1 := strconv.ParseUint(parts[1], 10, 64)
		id, err2 := strconv.ParseInt(parts[2], 10, 64)
		var rec memberRecord
		if err1 != nil || err2 != nil || json.Unmarshal(e.Value(), &rec) != nil {
			continue
		}
		if node == b.n.id || !b.n.Live(node) {
			continue // ours are local; a dead instance's are gone
		}
		out = append(out, hub.RemoteMember{Node: node, ID: id, Rev: e.Revision(), Info: rec.info()})
	}
}

// memberRecord is a member's presence record.
type memberRecord struct {
	Auth  bool            `json:"a,omitempty"`
	Mode  int             `json:"m"`
	Extra json.RawMessage `json:"x,omitempty"`
}

func (r memberRecord) info() protocol.MemberInfo {
	info := protocol.MemberInfo{Auth: r.Auth, Mode: r.Mode}
	if len(r.Extra) > 0 {
		info.Extra = r.Extra
	}
	return info
}

func (b *Broker) memberKey(l *link, id int64) string {
	return l.key + "." + nodeKey(b.n.id) + "." + strconv.FormatInt(id, 10)
}

// Unsubscribe implements hub.Broker.
func (b *Broker) Unsubscribe(ch *hub.Channel) {
	l := b.linkOf(ch)
	if l == nil {
		return
	}
	l.sub.Unsubscribe()
	b.mu.Lock()
	delete(b.subs, l.sub)
	if b.byKey[l.key] == l {
		delete(b.byKey, l.key)
	}
	b.mu.Unlock()
}

// Record implements hub.Broker.
func (b *Broker) Record(ctx context.Context, ch *hub.Channel, id int64, info protocol.MemberInfo) (uint64, error) {
	defer b.n.since("member_put", time.Now())
	l := b.linkOf(ch)
	val, err := json.Marshal(memberRecord{Auth: info.Auth, Mode: info.Mode, Extra: info.Extra})
	if err != nil {
		return 0, err
	}
	rev, err := b.n.members.Put(ctx, b.memberKey(l, id), val)
	return rev, unavailable(err)
}

// Forget implements hub.Broker. A delete that fails is retried after the
// next reconnect, so no record outlives its member.
func (b *Broker) Forget(ctx context.Context, ch *hub.Channel, id int64) error {
	defer b.n.since("member_delete", time.Now())
	key := b.memberKey(b.linkOf(ch), id)
	err := b.n.members.Delete(ctx, key)
	if err != nil {
		b.n.later(func(ctx context.Context) error { return b.n.members.Delete(ctx, key) })
	}
	return unavailable(err)
}

func (b *Broker) links() []*link {
	b.mu.Lock()
	defer b.mu.Unlock()
	links := make([]*link, 0, len(b.byKey))
	for _, l := range b.byKey {
		links = append(links, l)
	}
	return links
}

// markShared runs when the NATS connection is lost: it notes which
// channels had members elsewhere at that moment.
func (b *Broker) markShared() {
	for _, l := range b.links() {
		if b.h.HasRemote(l.ch) {
			l.shared.Store(true)
		}
	}
}

// dropped runs when NATS drops events of sub because the dispatcher is
// behind: whatever they were (sequenced or not), the channel's members may
// have missed them.
func (b *Broker) dropped(sub *nats.Subscription) {
	b.mu.Lock()
	l := b.subs[sub]
	b.mu.Unlock()
	if l == nil {
		return
	}
	b.n.log.Warn("cluster events dropped (this instance is behind): closing the channel's members")
	b.gaps.Add(1)
	b.h.Gap(l.ch)
}

// gapAll runs when this instance finds its lease expired: the others have
// reported every member here LEFT, so every member is closed with 1013
// (cluster gap: rejoin), rejoins and is announced again. It waits (a
// second at most) for the channels to empty, so that the lease is not
// taken again while members the others were told LEFT are still here.
func (b *Broker) gapAll() {
	for _, l := range b.links() {
		b.h.Gap(l.ch)
	}
	for deadline := time.Now().Add(time.Second); len(b.links()) > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// resync runs after a reconnect. Events of a channel that had members on
// other instances when the connection was lost, or has some now, may have
// been lost both ways while NATS was out of reach, so its local members
// are closed with 1013 and rejoin (their leaves and joins are then
// announced normally). A channel with only local members had nobody to
// miss: its records are written again.
func (b *Broker) resync() {
	for _, l := range b.links() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		shared := l.shared.Swap(false)
		remote, err := b.readMembers(ctx, l.key)
		b.resyncs.Add(1)
		if err != nil || shared || len(remote) > 0 || b.h.HasRemote(l.ch) {
			b.gaps.Add(1)
			b.h.Gap(l.ch)
		} else {
			for _, m := range b.h.LocalMembers(l.ch) {
				b.Record(ctx, l.ch, m.ID, m.Info)
			}
		}
		cancel()
	}
}

// Announce implements hub.Broker. nats.Conn.Publish only appends to the
// connection's buffer (or fails at once while disconnected: the buffer for
// reconnects is off), so it never waits on the network.
func (b *Broker) Announce(ch *hub.Channel, ev hub.Event) {
	l := b.linkOf(ch)
	if l == nil {
		return
	}
	b.announce(l, ev, nil)
}

func (b *Broker) announce(l *link, ev hub.Event, retained *retain.Message) {
	if b.n.Fenced() {
		return // the others count this instance dead and were told its members LEFT
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	b.publish(l.subject, ev.Kind, appendEnvelope(make([]byte, 0, 48+len(ev.Tail)+len(ev.Info.Extra)), b.n.id, l.id, l.seq, ev, retained))
}

func (b *Broker) publish(subject string, kind hub.EventKind, data []byte) error {
	if err := b.n.nc.Publish(subject, data); err != nil {
		b.drops.Add(1)
		return err
	}
	if kind <= hub.EventMessage {
		b.evOut[kind].Add(1)
	}
	return nil
}

// SetExtra implements hub.Broker: a request to the member's home
// instance, which applies and announces it.
func (b *Broker) SetExtra(ctx context.Context, ch *hub.Channel, node uint64, id int64, extra []byte, binary bool) (bool, error) {
	l := b.linkOf(ch)
	req := make([]byte, 0, len(l.key)+16+len(extra))
	req = append(req, l.key...)
	req = binary2(req, binary)
	req = strconv.AppendInt(append(req, ' '), id, 10)
	req = append(append(req, ' '), extra...)
	msg, err := b.n.nc.RequestWithContext(ctx, b.n.cfg.Prefix+".n."+nodeKey(node), req)
	if err != nil {
		return false, unavailable(err)
	}
	switch string(msg.Data) {
	case "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, fmt.Errorf("%w: %s", ErrUnavailable, msg.Data)
}

func binary2(dst []byte, binary bool) []byte {
	if binary {
		return append(dst, " b"...)
	}
	return append(dst, " t"...)
}

// serveRequest answers another instance's SET_EXTRA on a member here.
func (b *Broker) serveRequest(m *nats.Msg) {
	parts := strings.SplitN(string(m.Data), " ", 4)
	if len(parts) != 4 {
		m.Respond([]byte("bad request"))
		return
	}
	id, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		m.Respond([]byte("bad request"))
		return
	}
	b.mu.Lock()
	l := b.byKey[parts[0]]
	b.mu.Unlock()
	if l == nil {
		m.Respond([]byte("0"))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, err := b.h.SetExtra(ctx, l.ch, id, []byte(parts[3]), parts[1] == "b")
	switch {
	case err != nil:
		m.Respond([]byte(err.Error()))
	case ok:
		m.Respond([]byte("1"))
	default:
		m.Respond([]byte("0"))
	}
}

// dispatch applies every channel's events, one at a time, in the order
// they arrived.
func (b *Broker) dispatch() {
	defer b.done.Done()
	for {
		var m *nats.Msg
		select {
		case <-b.stop:
			return
		case m = <-b.in:
		}
		b.mu.Lock()
		l := b.subs[m.Sub]
		b.mu.Unlock()
		if l == nil {
			continue // unsubscribed meanwhile
		}
		node, linkID, seq, ev, retained, err := parseEnvelope(m.Data)
		if err != nil || node == b.n.id {
			continue
		}
		if ev.Kind > hub.EventMessage {
			continue
		}
		b.evIn[ev.Kind].Add(1)
		live, life, died := b.n.lifeOf(node)
		if !live && died {
			l.fenced[node] = true
			continue // fenced: its members were reported LEFT
		}
		if l.fenced[node] {
			// Events of a node back from a lapse arrived before its new
			// lease was seen, and were ignored: members here may have
			// missed them (a JOINED, say).
			delete(l.fenced, node)
			b.gaps.Add(1)
			b.n.log.Warn("cluster events of an instance back from a lapse were ignored: closing the channel's members", "from", node)
			b.h.Gap(l.ch)
		}
		if linkID != 0 {
			if prev, ok := l.last[node]; ok && prev.link == linkID && prev.life == life && seq != prev.seq+1 {
				b.gaps.Add(1)
				b.n.log.Warn("cluster events lost: closing the channel's members", "from", node, "missed", seq-prev.seq-1)
				b.h.Gap(l.ch)
			}
			l.last[node] = origin{linkID, seq, life}
		}
		if retained != nil {
			l.keepRetained(*retained) // before delivery: a joiner gets it one way or the other
		}
		b.h.ApplyRemote(l.ch, node, ev)
	}
}

// The envelope: version, kind, flags, then uvarints (node, link, seq, rev,
// mode), varints (id, to), then the payload (a message's tail, or an
// extra).
const envelopeVersion = 1

const (
	flagBinary = 1 << iota
	flagAuthOnly
	flagAuth
	flagExtra    // the payload is an extra (absent: no extra)
	flagRetained // the payload is a retained message: published, expires, cmd, fields
)

func appendEnvelope(dst []byte, node, linkID, seq uint64, ev hub.Event, retained *retain.Message) []byte {
	var flags byte
	if ev.Binary {
		flags |= flagBinary
	}
	if ev.AuthOnly {
		flags |= flagAuthOnly
	}
	if ev.Info.Auth {
		flags |= flagAuth
	}
	if ev.Info.Extra != nil {
		flags |= flagExtra
	}
	if retained != nil {
		flags |= flagRetained
	}
	dst = append(dst, envelopeVersion, byte(ev.Kind), flags)
	dst = binary.AppendUvarint(dst, node)
	dst = binary.AppendUvarint(dst, linkID)
	dst = binary.AppendUvarint(dst, seq)
	dst = binary.AppendUvarint(dst, ev.Rev)
	dst = binary.AppendUvarint(dst, uint64(ev.Info.Mode))
	dst = binary.AppendVarint(dst, ev.ID)
	dst = binary.AppendVarint(dst, ev.To)
	if retained != nil {
		dst = binary.AppendVarint(dst, retained.Published.UnixNano())
		dst = binary.AppendVarint(dst, retained.Expires.UnixNano())
		dst = binary.AppendUvarint(dst, uint64(len(retained.Cmd)))
		dst = append(dst, retained.Cmd...)
		return append(dst, retained.Fields...)
	}
	if ev.Kind == hub.EventMessage {
		return append(dst, ev.Tail...)
	}
	return append(dst, ev.Info.Extra...)
}

var errEnvelope = errors.New("cluster: malformed envelope")

func parseEnvelope(data []byte) (node, linkID, seq uint64, ev hub.Event, retained *retain.Message, err error) {
	if len(data) < 3 || data[0] != envelopeVersion {
		return 0, 0, 0, ev, nil, errEnvelope
	}
	ev.Kind, ev.Binary = hub.EventKind(data[1]), data[2]&flagBinary != 0
	ev.AuthOnly, ev.Info.Auth = data[2]&flagAuthOnly != 0, data[2]&flagAuth != 0
	hasExtra := data[2]&flagExtra != 0
	p := data[3:]
	u := func() uint64 {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			err = errEnvelope
			return 0
		}
		p = p[n:]
		return v
	}
	s := func() int64 {
		v, n := binary.Varint(p)
		if n <= 0 {
			err = errEnvelope
			return 0
		}
		p = p[n:]
		return v
	}
	node, linkID, seq, ev.Rev = u(), u(), u(), u()
	ev.Info.Mode = int(u())
	ev.ID, ev.To = s(), s()
	if err == nil && data[2]&flagRetained != 0 {
		published, expires := s(), s()
		n := u()
		if err != nil || n > uint64(len(p)) {
			return 0, 0, 0, ev, nil, errEnvelope
		}
		retained = &retain.Message{Cmd: string(p[:n]), Fields: p[n:], Published: time.Unix(0, published), Expires: time.Unix(0, expires)}
		ev.Tail = appendTail(nil, retained.Cmd, retained.Fields)
		return node, linkID, seq, ev, retained, nil
	}
	if err != nil {
		return 0, 0, 0, ev, nil, err
	}
	if ev.Kind == hub.EventMessage {
		ev.Tail = p
	} else if hasExtra {
		ev.Info.Extra = p
	}
	return node, linkID, seq, ev, nil, nil
}

// appendTail appends a delivered message's tail: `"cmd":…,fields}`.
func appendTail(dst []byte, cmd string, fields []byte) []byte {
	dst = append(dst, `"cmd":`...)
	dst = protocol.AppendString(dst, cmd)
	if len(fields) > 0 {
		dst = append(append(dst, ','), fields...)
	}
	return append(dst, '}')
}
