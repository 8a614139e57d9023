//go:build !linux

package relay

import (
	"errors"
	"io"
	"log/slog"
	"net"
)

// parkingAvailable: read parking needs epoll; this system keeps a reader
// goroutine per connection whatever RELAY_READ_PARKING says.
const parkingAvailable = false

type poller struct{}

func newPoller(*slog.Logger) (*poller, error) {
	return nil, errors.New("relay: read parking needs Linux")
}

func (*poller) parkedNow() int  { return 0 }
func (*poller) workersNow() int { return 0 }

type parkedReader struct{ c *conn }

func newParkedReader(*poller, net.Conn) *parkedReader { return nil }

func (*parkedReader) start()                   {}
func (*parkedReader) wake()                    {}
func (*parkedReader) beforeBlockingWrite()     {}
func (*parkedReader) leavePool()               {}
func (*parkedReader) Read([]byte) (int, error) { return 0, io.EOF }
