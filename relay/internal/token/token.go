// Package token stores grant tokens: minted by an authority for one channel,
// claimed by the JOIN that uses them, released when that member leaves.
//
// Lifecycle: a minted token must be claimed before its lifetime ends. A claim
// holds it for one member; while held nobody else can use it. Releasing it
// (the member left or disconnected) makes it claimable again until the rejoin
// window ends. Expiry is decided by comparing the store's clock with the
// token's deadline at claim time, so it is exact; sweeping only reclaims
// memory.
package token

import (
	"context"
	"errors"
	"time"
)

// Errors returned by Store.Claim. All mean "not a valid grant token for this
// channel" to a client (access_denied); they are distinct for logs and tests.
// Any other error from a Store means it could not decide (its shared state
// was unreachable): the client is told unavailable, never access_denied.
var (
	ErrUnknown      = errors.New("token: unknown token")
	ErrExpired      = errors.New("token: expired")
	ErrWrongChannel = errors.New("token: minted for another channel")
	ErrInUse        = errors.New("token: held by another member")
)

// Refused reports whether err is a Claim's refusal of the token, as
// opposed to a failure of the store.
func Refused(err error) bool {
	return errors.Is(err, ErrUnknown) || errors.Is(err, ErrExpired) ||
		errors.Is(err, ErrWrongChannel) || errors.Is(err, ErrInUse)
}

// Grant is what a token carries.
type Grant struct {
	Channel  string // channel name
	Protocol string
	Mode     int    // client mode, 0..2
	Extra    []byte // compact JSON object; read-only once stored
	MakeAuth bool   // the member becomes an authority of the channel
}

// Store keeps grant tokens. Implementations are safe for concurrent use.
// The in-memory Memory store serves one process; internal/cluster's store
// (NATS JetStream KV) lets a token minted on one instance be claimed on
// another.
type Store interface {
	// Mint stores g under a new opaque token that must be claimed within
	// ttl, and returns the token and its deadline.
	Mint(ctx context.Context, g Grant, ttl time.Duration) (token string, expires time.Time, err error)
	// Claim takes token for holder (a client id) to join (channel,
	// protocol). A held token is refused (ErrInUse); a store may let its
	// holder claim it again, but the relay never asks: a repeated JOIN
	// with the token a membership holds keeps the member's state. A token
	// for another channel is refused and left as it was.
	Claim(ctx context.Context, token, channel, protocol string, holder int64) (Grant, error)
	// Release gives up holder's claim; the token can be claimed again
	// within the store's rejoin window, and a claim then gets current's
	// Mode, Extra and MakeAuth: what the member held when it left (a
	// SET_EXTRA since it joined included), not the grant as minted, so a
	// client that rejoins after a network blip gets its state back.
	// current's Channel and Protocol are the channel the token was
	// claimed for (a store may keep only the holder while a token is
	// held). Releasing a token holder does not hold is a no-op.
	Release(ctx context.Context, token string, holder int64, current Grant) error
}
