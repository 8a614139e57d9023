package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relay-project/relay/relay/internal/token"
)

// Tokens is a token.Store in the cluster's tokens bucket, so a token minted
// on one instance can be claimed on any other.
//
// A token's key is the token itself (24 base64url characters, a valid key).
// Claiming is a compare-and-set on the key's revision: of two instances
// racing one token, exactly one write lands and the other sees the token
// held. Deadlines are in the value and compared with the claiming
// instance's clock, so expiry is exact to within the clock skew between
// hosts. Key TTLs only collect garbage: a free token's key expires a minute
// after its deadline; a held token's key has none.
//
// A token held by a member of an instance whose lease ended (it died
// without releasing) counts as released at the moment the lease was seen
// to end, so it is claimable within the rejoin window from then, with the
// grant it was claimed with (the dead instance took the member's later
// SET_EXTRA with it). The lowest live instance then rewrites such tokens
// as free, so their keys expire like any released token's instead of
// living forever.
type Tokens struct{ n *Node }

var _ token.Store = Tokens{}

// Tokens returns the node's token store.
func (n *Node) Tokens() Tokens { return Tokens{n} }

// tokenRecord is a token's value.
type tokenRecord struct {
	Channel  string          `json:"c"`
	Protocol string          `json:"p"`
	Mode     int             `json:"m"`
	Extra    json.RawMessage `json:"x,omitempty"`
	MakeAuth bool            `json:"a,omitempty"`
	Holder   int64           `json:"h,omitempty"` // client id; 0 while free
	Node     uint64          `json:"n,omitempty"` // the holder's instance
	Deadline int64           `json:"d"`           // claim deadline while free, Unix ns
}

// gcSlack is how long past its deadline a free token's key lives.
const gcSlack = time.Minute

// claimTries bounds the compare-and-set retries of one claim.
const claimTries = 3

// Mint implements token.Store.
func (t Tokens) Mint(ctx context.Context, g token.Grant, ttl time.Duration) (string, time.Time, error) {
	defer t.n.since("token_mint", time.Now())
	if err := t.n.joined(); err != nil {
		return "", time.Time{}, err
	}
	var raw [18]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, err
	}
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	exp := t.n.now().Add(ttl)
	rec := tokenRecord{Channel: g.Channel, Protocol: g.Protocol, Mode: g.Mode, Extra: g.Extra, MakeAuth: g.MakeAuth, Deadline: exp.UnixNano()}
	val, err := json.Marshal(&rec)
	if err != nil {
		return "", time.Time{}, err
	}
	if _, err := t.n.tokens.Create(ctx, tok, val, jetstream.KeyTTL(ttl+gcSlack)); err != nil {
		return "", time.Time{}, unavailable(err)
	}
	return tok, exp, nil
}

// inUseWait is how long a claim of a token held on another live instance
// (for more than a second) waits for its release before answering
// ErrInUse: a client closed by a drain or the connection age limit
// reconnects elsewhere while its old connection's leave (and release) is
// still on its way.
const inUseWait = 500 * time.Millisecond

// Claim implements token.Store.
func (t Tokens) Claim(ctx context.Context, tok, channel, protocol string, holder int64) (token.Grant, error) {
	defer t.n.since("token_claim", time.Now())
	deadline := time.Now().Add(inUseWait)
	for {
		g, err := t.claim(ctx, tok, channel, protocol, holder)
		if !errors.Is(err, errHeldElsewhere) {
			return g, err
		}
		if time.Now().After(deadline) {
			return token.Grant{}, token.ErrInUse
		}
		select {
		case <-ctx.Done():
			return token.Grant{}, token.ErrInUse
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// errHeldElsewhere is ErrInUse for a holder on another live instance.
var errHeldElsewhere = fmt.Errorf("%w (on another instance)", token.ErrInUse)

func (t Tokens) claim(ctx context.Context, tok, channel, protocol string, holder int64) (token.Grant, error) {
	if err := t.n.joined(); err != nil {
		return token.Grant{}, err
	}
	for range claimTries {
		e, err := t.n.tokens.Get(ctx, tok)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return token.Grant{}, token.ErrUnknown
		}
		if err != nil {
			return token.Grant{}, unavailable(err)
		}
		var rec tokenRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return token.Grant{}, fmt.Errorf("cluster: token record: %w", err)
		}
		if rec.Channel != channel || rec.Protocol != protocol {
			return token.Grant{}, token.ErrWrongChannel
		}
		g := token.Grant{Channel: rec.Channel, Protocol: rec.Protocol, Mode: rec.Mode, Extra: rec.Extra, MakeAuth: rec.MakeAuth}
		if len(rec.Extra) == 0 {
			g.Extra = nil
		}
		deadline := time.Unix(0, rec.Deadline)
		if rec.Holder != 0 {
			if rec.Holder == holder && rec.Node == t.n.id {
				return g, nil // a repeated JOIN
			}
			died, dead := t.n.DiedAt(rec.Node)
			if !dead && !t.n.Live(rec.Node) {
				// Not seen either way (a lease older than this
				// instance's watch): ask the bucket.
				if _, err := t.n.nodes.Get(ctx, nodeKey(rec.Node)); err == nil {
					return token.Grant{}, errHeldElsewhere
				} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
					return token.Grant{}, unavailable(err)
				}
				return token.Grant{}, token.ErrExpired // died too long ago to know when
			}
			if !dead {
				// A claim made just now is a race lost, not a member
				// on its way out: no wait.
				if rec.Node == t.n.id || time.Since(e.Created()) < time.Second {
					return token.Grant{}, token.ErrInUse
				}
				return token.Grant{}, errHeldElsewhere
			}
			deadline = died.Add(t.n.cfg.Rejoin)
		}
		if !t.n.now().Before(deadline) {
			return token.Grant{}, token.ErrExpired
		}
		rec.Holder, rec.Node = holder, t.n.id
		val, err := json.Marshal(&rec)
		if err != nil {
			return token.Grant{}, err
		}
		// A held token's key has no TTL: it lives as long as the member.
		_, err = t.n.tokens.Update(ctx, tok, val, e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // another claim or release landed first: look again
		}
		if err != nil {
			return token.Grant{}, unavailable(err)
		}
		return g, nil
	}
	return token.Grant{}, token.ErrInUse
}

// Release implements token.Store: a compare-and-set back to free, with the
// rejoin window as the new deadline and a key TTL past it. A release that
// fails because NATS is out of reach is retried after the next reconnect,
// so the token is not left held by a member that is gone.
func (t Tokens) Release(ctx context.Context, tok string, holder int64, current token.Grant) error {
	defer t.n.since("token_release", time.Now())
	err := t.release(ctx, tok, holder, current)
	if errors.Is(err, ErrUnavailable) {
		t.n.later(func(ctx context.Context) error { return t.release(ctx, tok, holder, current) })
	}
	return err
}

func (t Tokens) release(ctx context.Context, tok string, holder int64, current token.Grant) error {
	if err := t.n.joined(); err != nil {
		return err
	}
	for range claimTries {
		e, err := t.n.tokens.Get(ctx, tok)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return nil
		}
		if err != nil {
			return unavailable(err)
		}
		var rec tokenRecord
		if err := json.Unmarshal(e.Value(), &rec); err != nil {
			return fmt.Errorf("cluster: token record: %w", err)
		}
		if rec.Holder != holder || rec.Node != t.n.id {
			return nil // not ours (any more)
		}
		rec.Mode, rec.Extra, rec.MakeAuth = current.Mode, current.Extra, current.MakeAuth
		err = t.free(ctx, tok, rec, e.Revision(), t.n.now().Add(t.n.cfg.Rejoin))
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue
		}
		return unavailable(err)
	}
	return fmt.Errorf("%w: releasing a token: too many concurrent writes", ErrUnavailable)
}

// free writes rec back as released, claimable until deadline, if the
// key's revision is still rev; the key expires gcSlack past the deadline.
func (t Tokens) free(ctx context.Context, tok string, rec tokenRecord, rev uint64, deadline time.Time) error {
	rec.Holder, rec.Node, rec.Deadline = 0, 0, deadline.UnixNano()
	val, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	ttl := max(deadline.Sub(t.n.now()), 0) + gcSlack
	return t.n.casWithTTL(ctx, t.n.cfg.Prefix+"_tokens", tok, val, rev, ttl)
}

// casWithTTL writes val to key if its revision is still rev, with a key
// TTL: what KeyValue.Update cannot do (it drops the TTL), written as the
// publish KeyValue makes underneath.
func (n *Node) casWithTTL(ctx context.Context, bucket, key string, val []byte, rev uint64, ttl time.Duration) error {
	msg := &nats.Msg{Subject: "$KV." + bucket + "." + key, Data: val}
	_, err := n.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(rev), jetstream.WithMsgTTL(ttl))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return fmt.Errorf("%w: %w", err, jetstream.ErrKeyRevisionMismatch)
	}
	return err
}

// freeTokensOf runs when another instance's lease ends: on the lowest live
// instance, it rewrites the tokens node's members held as released at the
// lease's end, each by compare-and-set (a claim landing meanwhile wins),
// with a key TTL past the rejoin window. It reads every token key once,
// off the watcher's goroutine.
func (n *Node) freeTokensOf(node uint64) {
	died, dead := n.DiedAt(node)
	if !dead || !n.lowestLive() {
		return
	}
	if !countUnlessStopped(&n.mu, n.stop, &n.done) {
		return
	}
	go func() {
		defer n.done.Done()
		ctx, cancel := untilStopped(n.stop, 2*time.Minute)
		defer cancel()
		freed, err := Tokens{n}.freeHeldBy(ctx, node, died)
		if err != nil {
			n.log.Warn("freeing a lost instance's tokens failed; they stay claimable until their rejoin window ends", "node", node, "freed", freed, "err", err)
			return
		}
		n.log.Info("freed a lost instance's tokens", "node", node, "tokens", freed)
	}()
}

func (t Tokens) freeHeldBy(ctx context.Context, node uint64, died time.Time) (int, error) {
	keys, err := t.n.tokens.ListKeys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return 0, nil
		}
		return 0, err
	}
	defer keys.Stop()
	freed := 0
	for k := range keys.Keys() {
		e, err := t.n.tokens.Get(ctx, k)
		if err != nil {
			continue // gone meanwhile
		}
		if t.n.Live(node) {
			return freed, nil // back from a lapse: its members release their own
		}
		var rec tokenRecord
		if json.Unmarshal(e.Value(), &rec) != nil || rec.Holder == 0 || rec.Node != node || !e.Created().Before(died) {
			continue // not held there, or claimed since the lease ended
		}
		if err := t.free(ctx, k, rec, e.Revision(), died.Add(t.n.cfg.Rejoin)); err == nil {
			freed++
		} else if ctx.Err() != nil {
			return freed, ctx.Err()
		}
	}
	return freed, nil
}
