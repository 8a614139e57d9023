// Package cluster lets several relay instances behave as one relay, with
// NATS as the engine. It is the only package that imports NATS.
//
// A Node is one instance's membership of the cluster: its NATS connection,
// its JetStream key-value buckets, its lease (a key that expires unless the
// instance renews it, so a dead instance is noticed without its goodbye),
// the set of live instances, and readiness. On it sit the shared stores:
// Tokens (token.Store), Retained (retain.Store), the client id blocks
// (clientid.Blocks), and the Broker that links the hub to the other
// instances.
//
// # Names
//
// Every subject and bucket starts with the prefix (RELAY_NATS_PREFIX), so
// deployments can share a NATS. A channel is named by a hash of its
// (protocol, name) pair, ChannelKey, so any name and protocol make one safe
// subject token and key.
//
//	buckets  <P>_nodes     <node>         lease, expires after the node TTL
//	         <P>_meta      next-node, blocks
//	         <P>_tokens    <token>        grant tokens
//	         <P>_members   <ck>.<node>.<id>  presence records
//	         <P>_retained  <ck>.<cmd hash>   retained messages
//	subjects <P>.c.<ck>    every event of one channel, in order per sender
//	         <P>.n.<node>  requests to one instance
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relay-project/relay/relay/internal/clientid"
)

// ErrUnavailable wraps every failure to reach the cluster's shared state.
var ErrUnavailable = errors.New("cluster: NATS unavailable")

var (
	errDisconnected = fmt.Errorf("%w: not connected", ErrUnavailable)
	errClosed       = fmt.Errorf("%w: closed", ErrUnavailable)
)

// Config configures a Node.
type Config struct {
	URL       string // comma-separated NATS servers
	CredsFile string // NATS credentials file; "" for none
	Prefix    string // subject and bucket prefix; [A-Za-z0-9_-]+
	Replicas  int    // KV bucket replicas (1, or 3 on a NATS cluster)
	// NodeTTL is how long an instance that stopped renewing its lease is
	// still counted live; the others report its members LEFT after it.
	NodeTTL time.Duration
	// Rejoin is how long a released grant token stays claimable.
	Rejoin time.Duration
	// RetainMaxBytes and RetainMaxMessages bound the retained messages'
	// bucket.
	RetainMaxBytes    int64
	RetainMaxMessages int64
	Version           string // recorded in the lease
	Logger            *slog.Logger
	// Now is the clock for token deadlines. Default time.Now.
	Now func() time.Time
	// OnNodeLost is called (on the watcher's goroutine) when another
	// instance's lease expires or is deleted.
	OnNodeLost func(node uint64)
	// EventInbox is how many events from other instances may wait for
	// the broker's dispatcher; past it NATS drops them and the channel's
	// members are closed with 1013. 0 means 65536.
	EventInbox int
	// Observe, when set, gets the latency of every shared-state
	// operation, by operation name (for metrics).
	Observe func(op string, d time.Duration)
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Validate reports what is wrong with c.
func (c *Config) Validate() error {
	if c.URL == "" {
		return errors.New("cluster: no NATS URL")
	}
	if !prefixRE.MatchString(c.Prefix) {
		return fmt.Errorf("cluster: prefix %q: want 1 to 32 of A-Z a-z 0-9 _ -", c.Prefix)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("cluster: KV replicas %d: want 1 to 5", c.Replicas)
	}
	if c.NodeTTL < 3*time.Second {
		return fmt.Errorf("cluster: node TTL %s: want at least 3s", c.NodeTTL)
	}
	return nil
}

// Node is this instance in the cluster.
type Node struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	nc *nats.Conn
	js jetstream.JetStream

	nodes, meta, tokens, members, retained jetstream.KeyValue

	id    uint64 // this instance's node number, never reused
	rev   atomic.Uint64
	lease []byte // the lease's value, unique to this process

	// leaseMu serialises renewals (the ticker's and the one after a
	// reconnect), so neither sees the other's new revision as a lapse.
	leaseMu sync.Mutex
	lapsing bool        // under leaseMu: the lapse is handled, the lease not yet taken again
	fenced  atomic.Bool // the others count this instance dead: announce nothing

	up     atomic.Bool   // setup done: the fields it sets may be read
	leased atomic.Bool   // the lease was renewed within the TTL
	loaded atomic.Bool   // the live set was read once
	read   chan struct{} // closed when loaded is first set
	deaths atomic.Uint64
	lapses atomic.Uint64

	mu    sync.Mutex
	ups   []func()                      // called once setup is done
	lost  []func(node uint64)           // called when another instance's lease ends
	back  []func()                      // called (in order, on one goroutine) after a reconnect
	gone  []func()                      // called on NATS's goroutine when the connection is lost
	lapse []func()                      // called when this instance's own lease was found ended
	slow  []func(*nats.Subscription)    // called on NATS's goroutine when a subscription dropped messages
	retry []func(context.Context) error // writes that failed while NATS was out of reach
	live  map[uint64]bool               // node numbers with a lease
	death map[uint64]time.Time          // when a lease was seen to end
	ended map[uint64]uint64             // how many times a lease was seen to end
	stop  chan struct{}
	done  sync.WaitGroup

	closeOnce sync.Once
}

// Start connects to NATS, creates the buckets, takes a node number and a
// lease, and starts renewing it. It fails when NATS cannot be reached
// within ctx.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, now: cfg.Now, live: map[uint64]bool{}, death: map[uint64]time.Time{}, ended: map[uint64]uint64{}, stop: make(chan struct{}), read: make(chan struct{})}
	n.lost = append(n.lost, n.freeTokensOf)
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.now == nil {
		n.now = time.Now
	}
	opts := []nats.Option{
		nats.Name("relay"),
		// An instance skips its own events anyway: the server need not
		// send them back (one message less per event and instance).
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		// Never buffer publishes while disconnected: a reconnect would
		// replay stale events. A publish fails fast instead.
		nats.ReconnectBufSize(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.log.Warn("NATS connection lost", "err", err)
			for _, f := range hooks(n, &n.gone) {
				f()
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if !errors.Is(err, nats.ErrSlowConsumer) || sub == nil {
				n.log.Warn("NATS error", "err", err)
				return
			}
			for _, f := range hooks(n, &n.slow) {
				f(sub)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			n.log.Info("NATS reconnected", "server", c.ConnectedUrlRedacted())
			n.reconnected()
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if dl, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(dl)))
	}
	// NATS out of reach at start is not fatal: the connection keeps
	// trying, and so does setup; meanwhile the node is not ready.
	opts = append(opts, nats.RetryOnFailedConnect(true))
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster: connecting to %s: %w", cfg.URL, err)
	}
	n.nc = nc
	if err := n.setup(ctx); err != nil {
		n.log.Warn("cannot join the cluster yet; retrying", "err", err)
		n.done.Add(1)
		go n.retrySetup()
	}
	return n, nil
}

// retrySetup tries setup again every second until it succeeds or the node
// closes.
func (n *Node) retrySetup() {
	defer n.done.Done()
	for {
		select {
		case <-n.stop:
			return
		case <-time.After(time.Second):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := n.setup(ctx)
		cancel()
		if err == nil {
			return
		}
		n.log.Debug("cannot join the cluster yet", "err", err)
	}
}

func (n *Node) setup(ctx context.Context) error {
	var err error
	if n.js, err = jetstream.New(n.nc); err != nil {
		return fmt.Errorf("cluster: jetstream: %w", err)
	}
	p, r := n.cfg.Prefix, n.cfg.Replicas
	buckets := []struct {
		kv  *jetstream.KeyValue
		cfg jetstream.KeyValueConfig
	}{
		{&n.nodes, jetstream.KeyValueConfig{Bucket: p + "_nodes", History: 1, TTL: n.cfg.NodeTTL, LimitMarkerTTL: time.Minute, Replicas: r}},
		{&n.meta, jetstream.KeyValueConfig{Bucket: p + "_meta", History: 1, Replicas: r}},
		{&n.tokens, jetstream.KeyValueConfig{Bucket: p + "_tokens", History: 1, LimitMarkerTTL: time.Minute, Replicas: r}},
		{&n.members, jetstream.KeyValueConfig{Bucket: p + "_members", History: 1, Replicas: r}},
		{&n.retained, jetstream.KeyValueConfig{Bucket: p + "_retained", History: 1, LimitMarkerTTL: time.Minute, MaxBytes: n.cfg.RetainMaxBytes, Replicas: r}},
	}
	for _, b := range buckets {
		if *b.kv, err = n.js.CreateOrUpdateKeyValue(ctx, b.cfg); err != nil {
			return fmt.Errorf("%w: bucket %s: %w", ErrUnavailable, b.cfg.Bucket, err)
		}
	}
	if n.cfg.RetainMaxMessages > 0 {
		// A KV bucket has no message cap of its own; its stream does
		// (expired messages do not count: the server removes them).
		st, err := n.js.Stream(ctx, "KV_"+p+"_retained")
		if err != nil {
			return fmt.Errorf("%w: the retained bucket's stream: %w", ErrUnavailable, err)
		}
		sc := st.CachedInfo().Config
		if sc.MaxMsgs != n.cfg.RetainMaxMessages {
			sc.MaxMsgs = n.cfg.RetainMaxMessages
			if _, err := n.js.UpdateStream(ctx, sc); err != nil {
				return fmt.Errorf("%w: capping the retained bucket: %w", ErrUnavailable, err)
			}
		}
	}
	if n.id, err = n.increment(ctx, "next-node", func(old uint64) uint64 { return old + 1 }); err != nil {
		return fmt.Errorf("cluster: taking a node number: %w", err)
	}
	n.lease, _ = json.Marshal(leaseRecord{Version: n.cfg.Version, Started: n.now().UTC(), Nonce: rand.Text()})
	rev, err := n.nodes.Create(ctx, nodeKey(n.id), n.lease)
	if err != nil {
		return fmt.Errorf("%w: taking the lease: %w", ErrUnavailable, err)
	}
	n.rev.Store(rev)
	n.leased.Store(true)
	w, err := n.nodes.WatchAll(context.Background()) // lives past ctx
	if err != nil {
		return fmt.Errorf("%w: watching the nodes: %w", ErrUnavailable, err)
	}
	n.mu.Lock()
	select {
	case <-n.stop: // closed meanwhile
		n.mu.Unlock()
		w.Stop()
		return nil
	default:
	}
	n.done.Add(2)
	n.up.Store(true)
	hooks := n.ups
	n.mu.Unlock()
	go n.watchNodes(w)
	go n.renew()
	for _, f := range hooks {
		f()
	}
	// Ready when Start returns, NATS willing: a readiness probe right
	// after start should not see a live set still being read.
	select {
	case <-n.read:
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
	}
	n.log.Info("joined the cluster", "node", n.id, "server", n.nc.ConnectedUrlRedacted())
	return nil
}

// onUp runs f once the node has joined the cluster: now if it has.
func (n *Node) onUp(f func()) {
	n.mu.Lock()
	if !n.up.Load() {
		n.ups = append(n.ups, f)
		n.mu.Unlock()
		return
	}
	n.mu.Unlock()
	f()
}

// joined reports whether setup is done: the buckets, the node number and
// the lease exist. Before that, every shared-state call is unavailable.
func (n *Node) joined() error {
	if !n.up.Load() {
		return fmt.Errorf("%w: not joined yet", ErrUnavailable)
	}
	return nil
}

// leaseRecord is the value of a node's lease.
type leaseRecord struct {
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// Nonce tells this process's lease from any other's under the same
	// number (a renewal whose answer was lost, against a bucket NATS
	// lost and numbered again).
	Nonce string `json:"nonce"`
}

func nodeKey(id uint64) string { return strconv.FormatUint(id, 10) }

// increment replaces the counter key with next(old) by compare-and-set
// (old is 0 when the key is absent) and returns the new value.
func (n *Node) increment(ctx context.Context, key string, next func(old uint64) uint64) (uint64, error) {
	for {
		var old, rev uint64
		e, err := n.meta.Get(ctx, key)
		switch {
		case err == nil:
			if old, err = strconv.ParseUint(string(e.Value()), 10, 64); err != nil {
				return 0, fmt.Errorf("cluster: %s holds %q", key, e.Value())
			}
			rev = e.Revision()
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		v := next(old)
		val := []byte(strconv.FormatUint(v, 10))
		if rev == 0 {
			_, err = n.meta.Create(ctx, key, val)
		} else {
			_, err = n.meta.Update(ctx, key, val, rev)
		}
		switch {
		case err == nil:
			return v, nil
		case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch):
			continue // another instance got there first
		default:
			return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
}

// renew rewrites the lease every third of the TTL; readiness follows.
func (n *Node) renew() {
	defer n.done.Done()
	t := time.NewTicker(n.cfg.NodeTTL / 3)
	defer t.Stop()
	last := n.now()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.NodeTTL/3)
		_, err := n.renewOnce(ctx)
		cancel()
		if err != nil {
			if n.now().Sub(last) >= n.cfg.NodeTTL {
				n.leased.Store(false)
			}
			n.log.Warn("renewing the cluster lease failed", "node", n.id, "err", err)
			continue
		}
		last = n.now()
	}
}

// renewOnce rewrites the lease, and reports whether it found it lapsed.
//
// The revision moves under a renewal for two reasons: an earlier renewal
// was stored but its answer lost (the key holds this process's value), or
// the lease expired while this instance could not renew it (the key is
// deleted). Then the others have reported this instance's members LEFT
// and ignore its events. The lapse hooks run once (they close every
// member, so that each rejoins and is announced again), nothing is
// announced meanwhile, and the lease is taken again.
func (n *Node) renewOnce(ctx context.Context) (lapsed bool, err error) {
	n.leaseMu.Lock()
	defer n.leaseMu.Unlock()
	select {
	case <-n.stop:
		return false, errClosed
	default:
	}
	key := nodeKey(n.id)
	if !n.lapsing {
		rev, err := n.nodes.Update(ctx, key, n.lease, n.rev.Load())
		if err == nil {
			n.rev.Store(rev)
			n.leased.Store(true)
			return false, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return false, err
		}
		e, err := n.nodes.Get(ctx, key)
		switch {
		case err == nil && bytes.Equal(e.Value(), n.lease):
			n.rev.Store(e.Revision()) // our renewal, its answer lost
			n.leased.Store(true)
			return false, nil
		case err == nil:
			n.leased.Store(false)
			return false, fmt.Errorf("%w: node %d's lease belongs to another instance (NATS lost its JetStream data?); restart this instance", ErrUnavailable, n.id)
		case !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted):
			return false, err
		}
		n.log.Warn("the cluster lease had expired: closing every member so that each rejoins", "node", n.id)
		n.lapsing, lapsed = true, true
		n.fenced.Store(true)
		n.leased.Store(false)
		n.lapses.Add(1)
		for _, f := range hooks(n, &n.lapse) {
			f()
		}
	}
	rev, err := n.nodes.Create(ctx, key, n.lease)
	if err != nil {
		return lapsed, err
	}
	n.lapsing = false
	n.fenced.Store(false)
	n.rev.Store(rev)
	n.leased.Store(true)
	n.log.Info("cluster lease taken again", "node", n.id)
	return lapsed, nil
}

// watchNodes keeps the live set.
func (n *Node) watchNodes(w jetstream.KeyWatcher) {
	defer n.done.Done()
	defer w.Stop()
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-n.stop:
			return
		case e = <-w.Updates():
		}
		if e == nil {
			if !n.loaded.Swap(true) { // the initial values are in
				close(n.read)
			}
			continue
		}
		id, err := strconv.ParseUint(e.Key(), 10, 64)
		if err != nil {
			continue
		}
		n.mu.Lock()
		was := n.live[id]
		if e.Operation() == jetstream.KeyValuePut {
			n.live[id] = true
			delete(n.death, id)
		} else {
			delete(n.live, id)
			n.death[id] = e.Created()
			if was {
				n.ended[id]++
			}
		}
		n.mu.Unlock()
		if was && e.Operation() != jetstream.KeyValuePut && id != n.id {
			n.deaths.Add(1)
			n.log.Warn("cluster instance lost", "node", id)
			for _, f := range hooks(n, &n.lost) {
				f(id)
			}
			if n.cfg.OnNodeLost != nil {
				n.cfg.OnNodeLost(id)
			}
		}
	}
}

// onLost registers f to be called when another instance's lease ends.
func (n *Node) onLost(f func(node uint64)) {
	register(n, &n.lost, f)
}

// onReconnect registers f to run after every reconnect.
func (n *Node) onReconnect(f func()) {
	register(n, &n.back, f)
}

// onDisconnect registers f to run when the NATS connection is lost, on
// NATS's callback goroutine: f must not wait on NATS.
func (n *Node) onDisconnect(f func()) {
	register(n, &n.gone, f)
}

// onSlow registers f to run, on NATS's callback goroutine, when sub
// starts dropping messages because its receiver is behind.
func (n *Node) onSlow(f func(sub *nats.Subscription)) {
	register(n, &n.slow, f)
}

// onLapse registers f to run when this instance finds that its own lease
// expired, before it takes the lease again.
func (n *Node) onLapse(f func()) {
	register(n, &n.lapse, f)
}

// later queues a write that failed while NATS was out of reach, to be
// retried after the next reconnect.
func (n *Node) later(f func(context.Context) error) {
	n.mu.Lock()
	n.retry = append(n.retry, f)
	n.mu.Unlock()
}

// reconnected renews the lease (so a lapse during the outage is handled
// before anything else), retries the failed writes, then runs the
// reconnect hooks, on a goroutine of its own (not NATS's callback
// goroutine). After a lapse the hooks are skipped: every member is being
// closed already.
func (n *Node) reconnected() {
	if !countUnlessStopped(&n.mu, n.stop, &n.done) {
		return
	}
	go func() {
		defer n.done.Done()
		n.mu.Lock()
		retry, back := n.retry, n.back
		n.retry = nil
		n.mu.Unlock()
		ctx, cancel := untilStopped(n.stop, n.cfg.NodeTTL)
		defer cancel()
		if n.up.Load() {
			lapsed, err := n.renewOnce(ctx)
			if err != nil {
				n.log.Warn("renewing the cluster lease after the reconnect failed", "node", n.id, "err", err)
			}
			if lapsed {
				back = nil
			}
		}
		for _, f := range retry {
			if err := f(ctx); err != nil {
				n.log.Warn("a write retried after the reconnect failed", "err", err)
			}
		}
		for _, f := range back {
			f()
		}
	}()
}

// register appends hook f to *list, under n.mu.
func register[F any](n *Node, list *[]F, f F) {
	n.mu.Lock()
	*list = append(*list, f)
	n.mu.Unlock()
}

// hooks returns the hooks registered in *list, read under n.mu; the
// caller runs them without it.
func hooks[F any](n *Node, list *[]F) []F {
	n.mu.Lock()
	defer n.mu.Unlock()
	return *list
}

// countUnlessStopped counts a goroutine about to start in wg, unless stop
// is closed. The closer closes stop under mu, so its Wait never races an
// Add. (Node and Broker each stop their goroutines this way.)
func countUnlessStopped(mu *sync.Mutex, stop <-chan struct{}, wg *sync.WaitGroup) bool {
	mu.Lock()
	defer mu.Unlock()
	select {
	case <-stop:
		return false
	default:
	}
	wg.Add(1)
	return true
}

// untilStopped is a context that ends after d or when stop is closed.
func untilStopped(stop <-chan struct{}, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// Fenced reports whether the others count this instance dead (its lease
// lapsed and is not taken again yet): its events would be ignored.
func (n *Node) Fenced() bool { return n.fenced.Load() }

// Deaths returns how many other instances' leases ended since start.
func (n *Node) Deaths() uint64 { return n.deaths.Load() }

// Lapses returns how many times this instance found its own lease expired
// (NATS out of its reach for longer than the node TTL).
func (n *Node) Lapses() uint64 { return n.lapses.Load() }

// since reports the latency of operation op begun at start.
func (n *Node) since(op string, start time.Time) {
	if n.cfg.Observe != nil {
		n.cfg.Observe(op, time.Since(start))
	}
}

// ID returns this instance's node number.
func (n *Node) ID() uint64 { return n.id }

// Live reports whether node holds a lease, as far as this instance knows.
func (n *Node) Live(node uint64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.live[node]
}

// DiedAt returns when node's lease was seen to end, if it was.
func (n *Node) DiedAt(node uint64) (time.Time, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.death[node]
	return t, ok
}

// lifeOf reports, under one lock, whether node holds a lease, how many
// times its lease was seen to end, and whether it is dead now.
func (n *Node) lifeOf(node uint64) (live bool, life uint64, dead bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, dead = n.death[node]
	return n.live[node], n.ended[node], dead
}

// lowestLive reports whether this instance has the lowest node number of
// the live ones.
func (n *Node) lowestLive() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id := range n.live {
		if id < n.id {
			return false
		}
	}
	return true
}

// LiveNodes returns how many instances hold a lease.
func (n *Node) LiveNodes() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.live)
}

// Messages returns how many messages this instance's NATS connection has
// received and sent.
func (n *Node) Messages() (in, out uint64) {
	st := n.nc.Stats()
	return st.InMsgs, st.OutMsgs
}

// Connected reports whether the NATS connection is up.
func (n *Node) Connected() bool { return n.nc.IsConnected() }

// Ready reports whether this instance can serve requests that need the
// shared state: connected, holding its lease, with the live set read.
func (n *Node) Ready() bool {
	return n.up.Load() && n.nc.IsConnected() && n.leased.Load() && n.loaded.Load()
}

// Next implements clientid.Blocks on the shared counter "blocks": the
// current millisecond since the Epoch, or one past the last block any
// instance took, whichever is larger.
func (n *Node) Next(ctx context.Context) (uint64, error) {
	if err := n.joined(); err != nil {
		return 0, err
	}
	now := clientid.BlockAt(n.now())
	return n.increment(ctx, "blocks", func(old uint64) uint64 { return max(old+1, now) })
}

// Close deletes the lease (so the others report this instance's members
// LEFT at once rather than after the TTL) and closes the connection.
func (n *Node) Close() {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		close(n.stop)
		n.mu.Unlock()
		n.done.Wait()
		if n.up.Load() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			if err := n.nodes.Delete(ctx, nodeKey(n.id)); err != nil {
				n.log.Warn("deleting the cluster lease failed", "node", n.id, "err", err)
			}
			cancel()
		}
		n.nc.Drain()
		n.waitClosed()
	})
}

// Crash ends the node as a kill -9 would: the connection cut without a
// goodbye, the lease left to expire. For tests of the cluster's failure
// handling.
func (n *Node) Crash() {
	n.closeOnce.Do(func() {
		n.mu.Lock()
		close(n.stop)
		n.mu.Unlock()
		n.done.Wait()
		n.nc.Close()
	})
}

func (n *Node) waitClosed() {
	deadline := time.Now().Add(2 * time.Second)
	for !n.nc.IsClosed() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// unavailable wraps err from a NATS call as ErrUnavailable, unless it is
// nil or a context's end.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
