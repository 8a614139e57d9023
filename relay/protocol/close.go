package protocol

// CloseReason says why the relay closed a connection. It picks the WebSocket
// close code and the reason text the client sees, and names the condition in
// logs and metrics.
type CloseReason int

// Close reasons. The zero value is CloseClientGone.
const (
	// CloseClientGone: the client closed the connection or the network
	// failed. Nothing is sent.
	CloseClientGone CloseReason = iota
	// CloseMessageTooBig: the client sent a message over the size limit
	// (1009).
	CloseMessageTooBig
	// CloseSlowConsumer: the client's outbound queue overflowed because it
	// does not read fast enough (1008).
	CloseSlowConsumer
	// CloseWriteTimeout: a write to the client did not complete within the
	// write timeout (1008).
	CloseWriteTimeout
	// ClosePingTimeout: the client did not answer a keepalive ping in time
	// (1001).
	ClosePingTimeout
	// CloseServerRestart: the relay is shutting down; reconnect, possibly to
	// another instance (1012).
	CloseServerRestart
	// CloseMessageTimeout: a message the client started did not arrive
	// whole within RELAY_MESSAGE_TIMEOUT (1008).
	CloseMessageTimeout
	// CloseUnfinishedBudget: the relay holds RELAY_UNFINISHED_BYTES of
	// unfinished messages already; the client may reconnect and retry
	// (1013).
	CloseUnfinishedBudget
	// CloseJoinTimeout: the client was in no channel for
	// RELAY_JOIN_TIMEOUT, after connecting or after leaving its last
	// channel, and has not proved authority (1008).
	CloseJoinTimeout
	// CloseRateLimited: the client kept sending past RELAY_CLIENT_RATE
	// after its messages were refused with rate_limited (1008).
	CloseRateLimited
	// CloseClusterGap: events of one of the client's channels from another
	// instance of a cluster were lost; rejoin to resynchronise (1013).
	CloseClusterGap
	// CloseMaxAge: the connection reached RELAY_MAX_CONNECTION_AGE;
	// reconnect, possibly to another instance, and rejoin (1012).
	CloseMaxAge
)

// NumCloseReasons is how many close reasons there are; they are numbered
// 0..NumCloseReasons-1.
const NumCloseReasons = int(CloseMaxAge) + 1

// WebSocket close status codes the relay sends (RFC 6455 and the IANA
// registry). StatusProtocolError (broken framing) is sent by the WebSocket
// library itself, which reports no more than an error to the relay; such a
// connection ends as CloseClientGone, so it has no close reason of its own.
const (
	StatusNormal          = 1000
	StatusGoingAway       = 1001
	StatusProtocolError   = 1002
	StatusPolicyViolation = 1008
	StatusMessageTooBig   = 1009
	StatusServiceRestart  = 1012
	StatusTryAgainLater   = 1013
)

var closeReasons = [...]struct {
	name   string
	status int
	text   string
}{
	CloseClientGone:    {"client_gone", StatusNormal, ""},
	CloseMessageTooBig: {"message_too_big", StatusMessageTooBig, "message too big"},
	CloseSlowConsumer:  {"slow_consumer", StatusPolicyViolation, "slow consumer: outbound queue full"},
	CloseWriteTimeout:  {"write_timeout", StatusPolicyViolation, "slow consumer: write timed out"},
	ClosePingTimeout:   {"ping_timeout", StatusGoingAway, "keepalive ping not answered"},
	CloseServerRestart: {"server_restart", StatusServiceRestart, "server restart: reconnect"},

	CloseMessageTimeout:   {"message_timeout", StatusPolicyViolation, "message took too long to arrive"},
	CloseUnfinishedBudget: {"unfinished_budget", StatusTryAgainLater, "relay busy: too many unfinished messages; try again later"},
	CloseJoinTimeout:      {"join_timeout", StatusPolicyViolation, "no channel joined in time"},
	CloseRateLimited:      {"rate_limited", StatusPolicyViolation, "rate limit exceeded"},
	CloseClusterGap:       {"cluster_gap", StatusTryAgainLater, "cluster gap: rejoin"},
	CloseMaxAge:           {"max_age", StatusServiceRestart, "connection age limit: reconnect"},
}

// String returns the reason's stable name, as used in logs and metrics
// labels, e.g. "slow_consumer".
func (r CloseReason) String() string {
	if r < 0 || int(r) >= len(closeReasons) {
		return "unknown"
	}
	return closeReasons[r].name
}

// Policy reports whether r closes a client for what it sent, or failed to
// send, in time (message_timeout, unfinished_budget, join_timeout,
// rate_limited): the relay's limits on a client, as opposed to a broken
// connection, a slow reader or a restart.
func (r CloseReason) Policy() bool {
	switch r {
	case CloseMessageTimeout, CloseUnfinishedBudget, CloseJoinTimeout, CloseRateLimited:
		return true
	}
	return false
}

// Status returns the WebSocket close status code sent for r.
func (r CloseReason) Status() int {
	if r < 0 || int(r) >= len(closeReasons) {
		return StatusGoingAway
	}
	return closeReasons[r].status
}

// Text returns the close reason text sent for r (at most 123 bytes, as a
// close frame allows).
func (r CloseReason) Text() string {
	if r < 0 || int(r) >= len(closeReasons) {
		return ""
	}
	return closeReasons[r].text
}

// CloseReasons lists every close reason, for metrics that pre-create their
// label values.
func CloseReasons() []CloseReason {
	out := make([]CloseReason, len(closeReasons))
	for i := range out {
		out[i] = CloseReason(i)
	}
	return out
}
