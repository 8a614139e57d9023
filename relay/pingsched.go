package relay

import (
	"sync"
	"time"
)

// pingSchedule sends every connection of a Server its keepalive pings from
// one goroutine's ticks, instead of a timer per connection: a timer and its
// callback cost ~130 bytes of heap per idle connection, ~0.25 KB of RSS
// (BENCHMARKS.md, issue 16). Every connection waits the same interval, so
// a list kept in the order connections were (re)scheduled is also the
// order their pings are due: scheduling appends, the tick pops from the
// front, and a connection that ends unlinks itself, all in constant time.
// A ping goes out up to one tick (a sixteenth of the interval, at most a
// second) late.
type pingSchedule struct {
	mu         sync.Mutex
	head, tail *conn // connections waiting for their next ping, soonest first
	running    bool  // the tick goroutine is alive (it ends when the list empties)
}

// pingLink is a connection's place in its Server's pingSchedule.
type pingLink struct {
	prev, next *conn
	due        time.Duration // since Server.started; 0: not in the list
}

// pingTick is how often the schedule looks for pings that are due.
func pingTick(interval time.Duration) time.Duration {
	return min(max(interval/16, time.Millisecond), time.Second)
}

// add schedules c's next ping one interval from now, unless c is closing
// (end unlinks it after marking it closing, so it is not scheduled again).
func (ps *pingSchedule) add(c *conn) {
	s := c.srv
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if c.closing.Load() || c.ping.due != 0 {
		return
	}
	c.ping = pingLink{prev: ps.tail, due: time.Since(s.started) + s.cfg.PingInterval}
	if ps.tail != nil {
		ps.tail.ping.next = c
	} else {
		ps.head = c
	}
	ps.tail = c
	if !ps.running {
		ps.running = true
		go ps.run(s)
	}
}

// remove unlinks c, if it is waiting.
func (ps *pingSchedule) remove(c *conn) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.unlinkLocked(c)
}

func (ps *pingSchedule) unlinkLocked(c *conn) {
	l := &c.ping
	if l.due == 0 {
		return
	}
	if l.prev != nil {
		l.prev.ping.next = l.next
	} else {
		ps.head = l.next
	}
	if l.next != nil {
		l.next.ping.prev = l.prev
	} else {
		ps.tail = l.prev
	}
	*l = pingLink{}
}

// run pings the connections that are due at each tick, until none waits.
func (ps *pingSchedule) run(s *Server) {
	t := time.NewTicker(pingTick(s.cfg.PingInterval))
	defer t.Stop()
	for range t.C {
		now := time.Since(s.started)
		ps.mu.Lock()
		for ps.head != nil && ps.head.ping.due <= now {
			c := ps.head
			ps.unlinkLocked(c)
			go c.keepalive() // waits up to an interval for the pong
		}
		if ps.head == nil {
			ps.running = false
			ps.mu.Unlock()
			return
		}
		ps.mu.Unlock()
	}
}
