package relay

import (
	"errors"
	"io"
	"time"

	"github.com/relay-project/relay/relay/protocol"
)

// Limits on what one connection may hold or send (RATIONALE.md, "Why are
// unfinished messages, idle connections and message rates bounded?"): how
// long a message may take to arrive, how many bytes unfinished messages may
// hold in all, how long a connection may stay in no channel, and how fast it
// may send. A timer exists only while it runs and no limit needs a
// goroutine, so an idle joined connection pays a few fields for them, and
// they survive the read loop being replaced by epoll parking.

// proveAuthority records that the connection is an operator's backend: it
// came from an authority address or sent a valid authority token, or holds
// an authority membership. Such a connection may stay in no channel (the
// PHP SDK's CreateToken flow connects only to GRANT) and is not rate
// limited unless RELAY_CLIENT_RATE_AUTHORITIES is set.
func (c *conn) proveAuthority() {
	if c.authority {
		return
	}
	c.authority = true
	c.joinedChannel()
}

// armJoinTimeout starts the join timeout: on connecting, and on leaving
// the last channel.
func (c *conn) armJoinTimeout() {
	d := c.srv.cfg.JoinTimeout
	if d <= 0 || c.authority || c.closing.Load() {
		return
	}
	if c.joinTimer == nil {
		c.joinTimer = time.AfterFunc(d, c.joinExpired)
	}
}

// joinedChannel stops the join timeout and drops its timer: a joined idle
// connection holds none.
func (c *conn) joinedChannel() {
	if c.joinTimer != nil {
		c.joinTimer.Stop()
		c.joinTimer = nil
	}
}

func (c *conn) joinExpired() {
	if c.markClosing(protocol.CloseJoinTimeout) {
		c.debug("no channel joined in time", "timeout", c.srv.cfg.JoinTimeout)
		c.closeSocket(protocol.CloseJoinTimeout)
	}
}

// stopLimitTimers stops the timers once the connection has ended.
func (c *conn) stopLimitTimers() {
	if c.joinTimer != nil {
		c.joinTimer.Stop()
	}
	if c.msgTimer != nil {
		c.msgTimer.Stop()
	}
}

var errUnfinishedBudget = errors.New("unfinished messages over budget")

// readMidMessage is the socket's read while the read loop is inside a
// message: the message is unfinished, and this read may wait for the
// network. The first such read of a message starts the message timeout;
// every byte read is charged to the relay-wide budget for unfinished
// messages until the message ends. A message that arrives whole in the
// read buffer never gets here, so small messages pay nothing.
//
// Once the connection is closing, the library's close handshake may read
// from another goroutine; those reads pass straight through.
func (c *conn) readMidMessage(nc io.Reader, p []byte) (int, error) {
	if c.closing.Load() {
		return nc.Read(p)
	}
	if !c.msgWaited {
		c.msgWaited = true
		c.msgTimer = time.AfterFunc(c.srv.cfg.MessageTimeout, c.messageExpired)
	}
	n, err := nc.Read(p)
	if n > 0 {
		if _, berr := c.chargeUnfinished(n); berr != nil {
			return 0, berr
		}
	}
	return n, err
}

// chargeUnfinished charges n bytes read mid-message to the relay-wide
// budget for unfinished messages.
func (c *conn) chargeUnfinished(n int) (int, error) {
	if !c.msgWaited { // early bytes: the message timeout starts with them too
		c.msgWaited = true
		c.msgTimer = time.AfterFunc(c.srv.cfg.MessageTimeout, c.messageExpired)
	}
	c.msgHeld += int64(n)
	if held := c.srv.unfinished.Add(int64(n)); held > int64(c.srv.cfg.UnfinishedBytes) {
		c.srv.logBudget(held)
		// No bytes with the error: a read that filled its buffer
		// would have the error dropped by io.ReadFull.
		return 0, errUnfinishedBudget
	}
	return n, nil
}

// messageEnded releases what the message held, whole or not.
func (c *conn) messageEnded() {
	c.sock.inMessage.Store(false)
	if !c.msgWaited {
		return
	}
	c.msgWaited = false
	c.msgTimer.Stop()
	c.msgTimer = nil // an idle connection holds no timer
	c.srv.unfinished.Add(-c.msgHeld)
	c.msgHeld = 0
}

func (c *conn) messageExpired() {
	if c.markClosing(protocol.CloseMessageTimeout) {
		c.debug("message did not arrive in time", "timeout", c.srv.cfg.MessageTimeout)
		c.closeSocket(protocol.CloseMessageTimeout)
	}
}

// budgetLogInterval spaces the warnings about the unfinished-messages
// budget: under attack every refused connection would log otherwise.
const budgetLogInterval = 10 * time.Second

func (s *Server) logBudget(held int64) {
	now := time.Now().UnixNano()
	last := s.budgetLogged.Load()
	if now-last < int64(budgetLogInterval) || !s.budgetLogged.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("unfinished messages over budget; closing clients that add to them (1013)",
		"held_bytes", held, "limit", s.cfg.UnfinishedBytes)
}

// rateLimited reports whether RELAY_CLIENT_RATE applies to the connection.
func (c *conn) rateLimited() bool {
	return c.srv.cfg.ClientRate > 0 && (!c.authority || c.srv.cfg.ClientRateAuthorities)
}

// checkRate charges one message to the connection's rate and answers
// rate_limited when it is refused.
func (c *conn) checkRate(binary bool) (allowed, abuse bool) {
	allowed, abuse = c.takeRateToken()
	if !allowed && !abuse {
		c.kind = kindInvalid
		c.replyError(binary, 0, protocol.CodeRateLimited)
	}
	return allowed, abuse
}

// pingReceived charges a client's ping to its rate, as the WebSocket
// library's ping callback: a pong costs a write like an answer does. Past
// the rate the ping gets no pong; a client that keeps pinging is closed
// like a message flood. Once closing, the library's close handshake may
// read pings from another goroutine; they are answered as usual.
func (c *conn) pingReceived() bool {
	if c.closing.Load() || !c.rateLimited() {
		return true
	}
	allowed, abuse := c.takeRateToken()
	if abuse && c.markClosing(protocol.CloseRateLimited) {
		c.debug("rate limit exceeded by pings; closing", "rate", c.srv.cfg.ClientRate)
		go c.closeSocket(protocol.CloseRateLimited)
	}
	return allowed
}

// refusalForgiveness is how many times RELAY_CLIENT_RATE refused messages
// are forgiven per second. A client sending up to 1+refusalForgiveness
// times its rate is refused the excess and stays; one sending faster piles
// up refusals and is closed once it owes a burst.
const refusalForgiveness = 2

// takeRateToken charges one message to the connection's token bucket:
// RELAY_CLIENT_BURST tokens, refilled at RELAY_CLIENT_RATE per second. A
// message without a token is refused and takes none, so a client steadily
// over its rate still gets its rate through. Refusals are owed instead:
// forgiven at refusalForgiveness times the rate, and a client that owes a
// whole burst kept sending far past its rate while refused, and is
// disconnected (abuse).
func (c *conn) takeRateToken() (allowed, abuse bool) {
	now := time.Since(c.srv.started)
	burst := float64(c.srv.cfg.ClientBurst)
	refill := (now - c.rateLast).Seconds() * float64(c.srv.cfg.ClientRate)
	c.rateLast = now
	c.rateTokens = min(burst, c.rateTokens+refill)
	c.rateOwed = max(0, c.rateOwed-refill*refusalForgiveness)
	if c.rateTokens >= 1 {
		c.rateTokens--
		return true, false
	}
	c.rateOwed++
	if c.rateOwed > burst {
		c.debug("rate limit exceeded; closing", "rate", c.srv.cfg.ClientRate, "burst", c.srv.cfg.ClientBurst)
		return false, true
	}
	return false, false
}
