package relay_test

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/cluster/natstest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// TestMain fails the run if goroutines outlive the tests.
func TestMain(m *testing.M) { relaytest.Main(m) }

// Addresses: 127.0.0.1 is the only authority address in these tests;
// guests dial from 127.0.0.2.
const (
	authAddr  = "127.0.0.1"
	guestAddr = "127.0.0.2"
)

// instancesVar set to N runs a test's relay as N instances on an
// in-process NATS server (cluster mode), with the clients that authority
// and guest dial spread over them round-robin: TestSuitesOnNATS runs the
// conformance, HTTP API and lifecycle suites that way.
const instancesVar = "RELAY_TEST_INSTANCES"

// spreads maps a test's first instance to all of them.
var spreads sync.Map // *relaytest.Relay -> *spread

type spread struct {
	rs   []*relaytest.Relay
	next atomic.Int64
}

func startRelay(t *testing.T, mutate func(*relay.Config)) *relaytest.Relay {
	t.Helper()
	cfg := relaytest.Config(t)
	cfg.AuthorityIPs = []string{authAddr}
	if mutate != nil {
		mutate(&cfg)
	}
	n, _ := strconv.Atoi(os.Getenv(instancesVar))
	if n < 1 {
		return relaytest.Start(t, cfg, "")
	}
	srv := natstest.Start(t)
	cfg.NATSURL, cfg.ClusterNodeTTL = srv.URL(), nodeTTL
	sp := &spread{}
	for range n {
		sp.rs = append(sp.rs, relaytest.Start(t, cfg, ""))
	}
	spreads.Store(sp.rs[0], sp)
	return sp.rs[0]
}

// dialURL is the URL the next client of r dials: r's, or the next
// instance's when r runs as several.
func dialURL(r *relaytest.Relay) string {
	if v, ok := spreads.Load(r); ok {
		sp := v.(*spread)
		return sp.rs[int(sp.next.Add(1)-1)%len(sp.rs)].URL
	}
	return r.URL
}

// clients returns how many clients r serves, on all its instances.
func clients(r *relaytest.Relay) int {
	v, ok := spreads.Load(r)
	if !ok {
		return r.Clients()
	}
	n := 0
	for _, o := range v.(*spread).rs {
		n += o.Clients()
	}
	return n
}

func authority(t *testing.T, r *relaytest.Relay) *relaytest.Client {
	t.Helper()
	return relaytest.Dial(t, dialURL(r), &relaytest.DialOptions{Local: authAddr})
}

func guest(t *testing.T, r *relaytest.Relay) *relaytest.Client {
	t.Helper()
	return relaytest.Dial(t, dialURL(r), &relaytest.DialOptions{Local: guestAddr})
}

// grant asks authority a for a token and returns it.
func grant(t *testing.T, a *relaytest.Client, name, proto string, mode int, extra string, makeauth bool) string {
	t.Helper()
	req := fmt.Sprintf(`{"cmd":"GRANT","channel":%q,"protocol":%q,"clientmode":%d,"extra":%s`, name, proto, mode, extra)
	if makeauth {
		req += `,"makeauth":true`
	}
	a.Send(req + "}")
	m := a.NextMap()
	tok, _ := m["token"].(string)
	if m["cmd"] != "GRANTED" || tok == "" {
		t.Fatalf("GRANT %s: got %v", req, m)
	}
	return tok
}

// join sends JOIN and returns the joiner's own JOINED.
func join(t *testing.T, c *relaytest.Client, name, proto, tok string) map[string]any {
	t.Helper()
	req := fmt.Sprintf(`{"cmd":"JOIN","channel":%q,"protocol":%q`, name, proto)
	if tok != "" {
		req += fmt.Sprintf(`,"token":%q`, tok)
	}
	c.Send(req + "}")
	m := c.NextMap()
	if m["cmd"] != "JOINED" || m["clients"] == nil {
		t.Fatalf("%s: got %v", req, m)
	}
	return m
}

// errFrame is the exact error frame for code on channel.
func errFrame(channel int, code, text string) string {
	return fmt.Sprintf(`{"channel":%d,"success":false,"error":%q,"errorcode":%q}`, channel, text, code)
}

// expectError reads the next frame and checks it is an error with code on
// channel.
func expectError(t *testing.T, c *relaytest.Client, channel int, code string) {
	t.Helper()
	m := c.NextMap()
	if m["success"] != false || m["errorcode"] != code || fmt.Sprint(m["channel"]) != fmt.Sprint(channel) {
		t.Fatalf("want error %s on channel %d, got %v", code, channel, m)
	}
	if text, _ := m["error"].(string); text == "" {
		t.Fatalf("error frame without text: %v", m)
	}
}

// clock is an injectable clock for token expiry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func id(m map[string]any) string { return fmt.Sprint(m["id"]) }

// frameField returns the top-level field key of a JSON frame, as its JSON
// text (client ids are larger than a float64 prints exactly with %v).
func frameField(t *testing.T, frame []byte, key string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(frame, &m); err != nil {
		t.Fatalf("frame %s: %v", frame, err)
	}
	return string(m[key])
}

func clientIDs(m map[string]any) string {
	clients, _ := m["clients"].(map[string]any)
	var ids []string
	for k := range clients {
		ids = append(ids, k)
	}
	sort.Strings(ids)
	return strings.Join(ids, ",")
}
