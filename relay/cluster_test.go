package relay_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/relay-project/relay/relay"
	"github.com/relay-project/relay/relay/internal/cluster/natstest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

// nodeTTL is the tests' RELAY_CLUSTER_NODE_TTL, the smallest allowed.
const nodeTTL = 3 * time.Second

// startCluster starts n relay instances on one in-process NATS server.
func startCluster(t *testing.T, n int, mutate func(*relay.Config)) (*natstest.Server, []*relaytest.Relay) {
	t.Helper()
	srv := natstest.Start(t)
	var rs []*relaytest.Relay
	for range n {
		rs = append(rs, startRelay(t, func(c *relay.Config) {
			c.NATSURL, c.ClusterNodeTTL = srv.URL(), nodeTTL
			if mutate != nil {
				mutate(c)
			}
		}))
	}
	return srv, rs
}

// Members on three instances see one channel: JOINED everywhere it is
// allowed, the joiner's list complete, broadcast, direct send and
// SET_EXTRA across instances, invalid_to for an id that is nowhere, and
// LEFT everywhere; a token minted on one instance is claimed on another.
func TestClusterOneChannelOverThreeInstances(t *testing.T) {
	_, rs := startCluster(t, 3, nil)
	a := authority(t, rs[0])
	aj := join(t, a, "room", "chat", "")
	aID := id(aj)

	tok := grant(t, a, "room", "chat", 2, `{"name":"g"}`, false)
	g := guest(t, rs[1])
	gj := join(t, g, "room", "chat", tok)
	gID := id(gj)
	if got := clientIDs(gj); got != sortedIDs(aID, gID) {
		t.Fatalf("guest on B lists %s, want %s", got, sortedIDs(aID, gID))
	}
	if m := a.NextMap(); m["cmd"] != "JOINED" || id(m) != gID {
		t.Fatalf("authority on A: want JOINED of %s, got %v", gID, m)
	}

	b := authority(t, rs[2])
	bj := join(t, b, "room", "chat", "")
	bID := id(bj)
	if got := clientIDs(bj); got != sortedIDs(aID, gID, bID) {
		t.Fatalf("authority on C lists %s, want %s", got, sortedIDs(aID, gID, bID))
	}
	for who, c := range map[string]*relaytest.Client{"A": a, "B": g} {
		if m := c.NextMap(); m["cmd"] != "JOINED" || id(m) != bID {
			t.Fatalf("member on %s: want JOINED of %s, got %v", who, bID, m)
		}
	}

	// Broadcast from B, in order, to everyone (the sender too, as on one
	// instance) with each one's own channel number.
	gCh := fmt.Sprint(gj["channel"])
	for i := range 20 {
		g.Send(fmt.Sprintf(`{"channel":%s,"cmd":"say","to":-1,"n":%d}`, gCh, i))
	}
	for who, c := range map[string]*relaytest.Client{"A": a, "B": g, "C": b} {
		ch := map[string]any{"A": aj["channel"], "B": gj["channel"], "C": bj["channel"]}[who]
		for i := range 20 {
			want := fmt.Sprintf(`{"channel":%v,"success":true,"from":%s,"cmd":"say","n":%d}`, ch, gID, i)
			if got := string(c.Next().Data); got != want {
				t.Fatalf("member on %s, message %d: got %s, want %s", who, i, got, want)
			}
		}
	}

	// Direct from C to the guest on B; invalid_to for an id nowhere.
	bCh := fmt.Sprint(bj["channel"])
	b.Send(fmt.Sprintf(`{"channel":%s,"cmd":"psst","to":%s}`, bCh, gID))
	if got, want := string(g.Next().Data), fmt.Sprintf(`{"channel":%s,"success":true,"from":%s,"cmd":"psst"}`, gCh, bID); got != want {
		t.Fatalf("direct across instances: got %s, want %s", got, want)
	}
	b.Send(fmt.Sprintf(`{"channel":%s,"cmd":"psst","to":12345}`, bCh))
	expectError(t, b, int(mustInt(t, bCh)), "invalid_to")

	// SET_EXTRA from A on the guest on B: told on B and C.
	aCh := fmt.Sprint(aj["channel"])
	a.Send(fmt.Sprintf(`{"channel":%s,"cmd":"SET_EXTRA","id":%s,"extra":{"name":"G"}}`, aCh, gID))
	for who, c := range map[string]*relaytest.Client{"A": a, "B": g, "C": b} {
		m := c.NextMap()
		if m["cmd"] != "SET_EXTRA" || id(m) != gID {
			t.Fatalf("member on %s: want SET_EXTRA of %s, got %v", who, gID, m)
		}
	}

	// LEAVE on B: LEFT on A and C.
	g.Send(fmt.Sprintf(`{"channel":%s,"cmd":"LEAVE"}`, gCh))
	if m := g.NextMap(); m["cmd"] != "LEFT" {
		t.Fatalf("leaver: got %v", m)
	}
	for who, c := range map[string]*relaytest.Client{"A": a, "C": b} {
		if m := c.NextMap(); m["cmd"] != "LEFT" || id(m) != gID {
			t.Fatalf("member on %s: want LEFT of %s, got %v", who, gID, m)
		}
	}
	a.ExpectNone(200 * time.Millisecond)
	b.ExpectNone(0)
}

// An instance that dies without a goodbye: the others report its members
// LEFT within the node TTL plus 2s, and the token its member held works
// again on another instance.
func TestClusterDeadInstance(t *testing.T) {
	_, rs := startCluster(t, 2, nil)
	a := authority(t, rs[0])
	join(t, a, "room", "chat", "")
	tok := grant(t, a, "room", "chat", 1, `{}`, false)
	g := guest(t, rs[1])
	gID := id(join(t, g, "room", "chat", tok))
	if m := a.NextMap(); m["cmd"] != "JOINED" {
		t.Fatalf("want JOINED, got %v", m)
	}

	start := time.Now()
	rs[1].CrashCluster()
	g.Conn().CloseNow() // the instance is gone, and its clients with it
	m := a.NextMap()
	if m["cmd"] != "LEFT" || id(m) != gID {
		t.Fatalf("want LEFT of %s, got %v", gID, m)
	}
	if d, bound := time.Since(start), nodeTTL+2*time.Second; d > bound {
		t.Fatalf("LEFT after %s, over the bound %s", d, bound)
	}
	g2 := guest(t, rs[0])
	if got := join(t, g2, "room", "chat", tok); clientIDs(got) == "" {
		t.Fatalf("rejoin with the dead instance's token: %v", got)
	}
}

// A graceful drain: the others hear LEFT at once, and the drained client
// rejoins on another instance with its token.
func TestClusterDrain(t *testing.T) {
	_, rs := startCluster(t, 2, nil)
	a := authority(t, rs[0])
	join(t, a, "room", "chat", "")
	tok := grant(t, a, "room", "chat", 1, `{}`, false)
	g := guest(t, rs[1])
	gID := id(join(t, g, "room", "chat", tok))
	a.NextMap() // JOINED

	start := time.Now()
	rs[1].Stop(t)
	m := a.NextMap()
	if m["cmd"] != "LEFT" || id(m) != gID {
		t.Fatalf("want LEFT of %s, got %v", gID, m)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("LEFT %s after the drain began", d)
	}
	g2 := guest(t, rs[0])
	join(t, g2, "room", "chat", tok)
	if m := a.NextMap(); m["cmd"] != "JOINED" {
		t.Fatalf("want JOINED of the rejoined guest, got %v", m)
	}
}

func sortedIDs(ids ...string) string {
	m := map[string]any{"clients": map[string]any{}}
	for _, i := range ids {
		m["clients"].(map[string]any)[i] = true
	}
	return clientIDs(m)
}

// The HTTP API is cluster-wide: a token minted through one instance works
// on another; a publish through an instance with no member in the channel
// reaches the members elsewhere (broadcast and direct, invalid_to for an id
// that is nowhere); presence lists every instance's members; a retained
// message is replayed to a late joiner on any instance.
func TestClusterHTTPAPI(t *testing.T) {
	_, rs := startCluster(t, 3, nil)
	api0, api1, api2 := newAPI(t, rs[0], authAddr, ""), newAPI(t, rs[1], authAddr, ""), newAPI(t, rs[2], authAddr, "")

	st, tok := api1.post("/v1/tokens", map[string]any{"channel": "job", "protocol": "jobs", "extra": map[string]any{"u": 1}})
	wantStatus(t, st, tok, http.StatusCreated, "")
	g := guest(t, rs[0])
	gj := join(t, g, "job", "jobs", tok["token"].(string))
	gCh, gID := fmt.Sprint(gj["channel"]), id(gj)

	st, pub := api2.post("/v1/publish", map[string]any{"channel": "job", "protocol": "jobs", "cmd": "ready", "fields": map[string]any{"url": "/r"}})
	wantStatus(t, st, pub, http.StatusOK, "")
	if fmt.Sprint(pub["delivered"]) != "1" || fmt.Sprint(pub["channel"]) != "0" {
		t.Fatalf("publish through an instance without members: %v", pub)
	}
	g.Expect(`{"channel":` + gCh + `,"success":true,"from":0,"cmd":"ready","url":"/r"}`)
	st, pub = api1.post("/v1/publish", map[string]any{"channel": "job", "protocol": "jobs", "cmd": "ping", "to": gj["id"]})
	wantStatus(t, st, pub, http.StatusOK, "")
	g.Expect(`{"channel":` + gCh + `,"success":true,"from":0,"cmd":"ping"}`)
	st, pub = api1.post("/v1/publish", map[string]any{"channel": "job", "protocol": "jobs", "cmd": "ping", "to": 999999})
	wantStatus(t, st, pub, http.StatusNotFound, "invalid_to")

	if ms := rs[2].Members("job", "jobs"); len(ms) != 1 || fmt.Sprint(ms[0].ID) != gID {
		t.Fatalf("Server.Members on an instance without members: %+v", ms)
	}
	want := fmt.Sprintf("map[auth:false extra:map[u:1] id:%s mode:0]", gID)
	for i, a := range []*api{api0, api1, api2} {
		st, pres := a.get("/v1/presence?channel=job&protocol=jobs")
		wantStatus(t, st, pres, http.StatusOK, "")
		members, _ := pres["members"].([]any)
		if len(members) != 1 || fmt.Sprint(members[0]) != want {
			t.Fatalf("presence through instance %d: %v", i, pres)
		}
	}

	// Retained through C: live to the member on A, replayed to late
	// joiners on A (subscribed already) and on B (not yet).
	st, pub = api2.post("/v1/publish", map[string]any{"channel": "job", "protocol": "jobs", "cmd": "done", "fields": map[string]any{"ok": true}, "retain": 60})
	wantStatus(t, st, pub, http.StatusOK, "")
	if pub["retained"] != true {
		t.Fatalf("retained publish %v", pub)
	}
	g.Expect(`{"channel":` + gCh + `,"success":true,"from":0,"cmd":"done","ok":true}`)
	for i, r := range []*relaytest.Relay{rs[0], rs[1]} {
		late := authority(t, r)
		lj := join(t, late, "job", "jobs", "")
		late.Expect(`{"channel":` + fmt.Sprint(lj["channel"]) + `,"success":true,"from":0,"cmd":"done","ok":true,"replayed":true}`)
		late.ExpectNone(50 * time.Millisecond)
		if i == 0 {
			if m := g.NextMap(); m["cmd"] != "JOINED" {
				t.Fatalf("want JOINED of the late joiner, got %v", m)
			}
		}
	}
}

// readyz returns the status of r's /readyz.
func readyz(t *testing.T, r *relaytest.Relay) int {
	t.Helper()
	resp, err := http.Get("http://" + r.Addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// NATS stopped and started again mid-traffic: /readyz turns 503, local
// members keep talking, a JOIN that needs the shared state answers
// unavailable promptly; once NATS is back the instance is ready again, the
// members of a channel shared with another instance are closed with 1013
// (cluster gap: rejoin) and rejoin, each told JOINED once, and a channel
// with only local members is left alone.
func TestClusterNATSLossAndReturn(t *testing.T) {
	// A lease that cannot lapse during the outage, however slow the
	// machine: a lapse closes every member (TestClusterLeaseLapse).
	srv, rs := startCluster(t, 2, func(c *relay.Config) { c.ClusterNodeTTL = time.Minute })
	a := authority(t, rs[0])
	join(t, a, "room", "chat", "")
	b := authority(t, rs[1])
	join(t, b, "room", "chat", "")
	a.NextMap() // JOINED of b
	l1, l2 := authority(t, rs[0]), authority(t, rs[0])
	l1j := join(t, l1, "solo", "chat", "")
	join(t, l2, "solo", "chat", "")
	l1.NextMap() // JOINED of l2
	l1Ch := fmt.Sprint(l1j["channel"])

	srv.Stop()
	eventually(t, 5*time.Second, "/readyz 503 with NATS down", func() bool { return readyz(t, rs[0]) == http.StatusServiceUnavailable })
	l1.Send(fmt.Sprintf(`{"channel":%s,"cmd":"hi","to":-1}`, l1Ch))
	l2.Expect(fmt.Sprintf(`{"channel":%s,"success":true,"from":%s,"cmd":"hi"}`, l1Ch, id(l1j)))
	l1.Next() // its own copy
	c := authority(t, rs[0])
	start := time.Now()
	c.Send(`{"cmd":"JOIN","channel":"new","protocol":"chat"}`)
	expectError(t, c, 0, "unavailable")
	if d := time.Since(start); d > 6*time.Second {
		t.Fatalf("JOIN with NATS down answered after %s", d)
	}

	srv.Restart()
	// Each instance reconnects on its own schedule (NATS client backoff):
	// the gap is detected, and its members closed, once it is back.
	for i, r := range rs {
		eventually(t, 15*time.Second, fmt.Sprintf("/readyz 200 on instance %d with NATS back", i), func() bool { return readyz(t, r) == http.StatusOK })
	}
	for who, m := range map[string]*relaytest.Client{"A": a, "B": b} {
		m.Closed(10 * time.Second)
		if err := m.Err(); websocket.CloseStatus(err) != 1013 || !strings.Contains(err.Error(), "cluster gap: rejoin") {
			t.Fatalf("member on %s: closed with %v, want 1013 cluster gap: rejoin", who, err)
		}
	}
	l1.Send(fmt.Sprintf(`{"channel":%s,"cmd":"still","to":-1}`, l1Ch))
	l2.Expect(fmt.Sprintf(`{"channel":%s,"success":true,"from":%s,"cmd":"still"}`, l1Ch, id(l1j)))

	a2 := authority(t, rs[0])
	a2j := join(t, a2, "room", "chat", "")
	b2 := authority(t, rs[1])
	b2j := join(t, b2, "room", "chat", "")
	if got, want := clientIDs(b2j), sortedIDs(id(a2j), id(b2j)); got != want {
		t.Fatalf("rejoined member lists %s, want %s", got, want)
	}
	if m := a2.NextMap(); m["cmd"] != "JOINED" || id(m) != id(b2j) {
		t.Fatalf("want JOINED of %s, got %v", id(b2j), m)
	}
	a2.ExpectNone(300 * time.Millisecond)
}

// One instance cut off from NATS for longer than the node TTL, while the
// other stays connected: the other reports its members LEFT within the
// bound, and a token one of them held can be claimed there. When the cut
// instance is back it finds its lease expired and closes every member
// (shared and local-only channels alike) with 1013 (cluster gap: rejoin),
// counted; nobody is told LEFT twice, the token stays with its new holder,
// and a member that rejoins is announced once.
func TestClusterLeaseLapse(t *testing.T) {
	srv, rs := startCluster(t, 1, nil)
	cut := srv.Proxy(t)
	rs = append(rs, startRelay(t, func(c *relay.Config) { c.NATSURL, c.ClusterNodeTTL = cut.URL(), nodeTTL }))
	eventually(t, 5*time.Second, "instance B ready", func() bool { return readyz(t, rs[1]) == http.StatusOK })
	a := authority(t, rs[0])
	aID := id(join(t, a, "room", "chat", ""))
	tok := grant(t, a, "room", "chat", 1, `{"n":1}`, false)
	g := guest(t, rs[1])
	gID := id(join(t, g, "room", "chat", tok))
	a.NextMap() // JOINED of g
	solo := authority(t, rs[1])
	join(t, solo, "solo", "chat", "")

	cut.Cut()
	start := time.Now()
	// The guest goes on talking: its instance's sends fail meanwhile.
	g.Send(`{"channel":1,"cmd":"unheard","to":-1}`)
	if m := a.NextMap(); m["cmd"] != "LEFT" || id(m) != gID {
		t.Fatalf("want LEFT of the cut-off guest, got %v", m)
	}
	within(t, "LEFT of the cut-off instance's member", time.Since(start), 0, nodeTTL+2*time.Second)
	// The token its holder can no longer release is free here.
	thief := guest(t, rs[0])
	thiefID := id(join(t, thief, "room", "chat", tok))
	if m := a.NextMap(); m["cmd"] != "JOINED" || id(m) != thiefID {
		t.Fatalf("want JOINED of the new holder, got %v", m)
	}

	cut.Heal()
	for who, m := range map[string]*relaytest.Client{"guest": g, "local-only member": solo} {
		m.Closed(15 * time.Second)
		if err := m.Err(); websocket.CloseStatus(err) != 1013 || !strings.Contains(err.Error(), "cluster gap: rejoin") {
			t.Fatalf("%s on the cut-off instance: closed with %v, want 1013 cluster gap: rejoin", who, err)
		}
	}
	eventually(t, 10*time.Second, "/readyz 200 on instance B", func() bool { return readyz(t, rs[1]) == http.StatusOK })
	if got := gauge(t, rs[1], "relay_cluster_lease_lapses_total"); got != 1 {
		t.Fatalf("relay_cluster_lease_lapses_total %v, want 1", got)
	}
	if got := gauge(t, rs[0], "relay_cluster_lease_lapses_total"); got != 0 {
		t.Fatalf("the connected instance: relay_cluster_lease_lapses_total %v, want 0", got)
	}

	// The old holder comes back through the same URL: the token is the
	// new holder's (a refused token is access_denied, as in DRC).
	g2 := guest(t, rs[1])
	g2.Send(`{"cmd":"JOIN","channel":"room","protocol":"chat","token":"` + tok + `"}`)
	expectError(t, g2, 0, "access_denied")
	b := authority(t, rs[1])
	bj := join(t, b, "room", "chat", "")
	if got, want := clientIDs(bj), sortedIDs(aID, thiefID, id(bj)); got != want {
		t.Fatalf("a member joining the returned instance lists %s, want %s", got, want)
	}
	for _, m := range []*relaytest.Client{a, thief} {
		if got := m.NextMap(); got["cmd"] != "JOINED" || id(got) != id(bj) {
			t.Fatalf("want JOINED of the returned instance's member, got %v", got)
		}
		m.ExpectNone(300 * time.Millisecond) // no second LEFT of the guest, no second JOINED
	}
}

// A connection age limit closes a connection with 1012 before a platform
// would cut it; the client reconnects to another instance and rejoins
// with its token, and the others hear LEFT, then JOINED.
func TestClusterConnectionAge(t *testing.T) {
	srv, rs := startCluster(t, 1, nil)
	// The second instance retires its connections after 2s; the first
	// keeps its observer.
	rs = append(rs, startRelay(t, func(c *relay.Config) {
		c.NATSURL, c.ClusterNodeTTL, c.MaxConnectionAge = srv.URL(), nodeTTL, 2*time.Second
	}))
	a := authority(t, rs[0])
	join(t, a, "room", "chat", "")
	tok := grant(t, a, "room", "chat", 1, `{"n":1}`, false)
	g := guest(t, rs[1])
	start := time.Now()
	gID := id(join(t, g, "room", "chat", tok))
	a.NextMap() // JOINED
	g.Closed(5 * time.Second)
	if err := g.Err(); websocket.CloseStatus(err) != 1012 {
		t.Fatalf("closed with %v, want 1012", err)
	}
	if d := time.Since(start); d < 1800*time.Millisecond || d > 3*time.Second {
		t.Fatalf("closed after %s, want about 2s less up to a tenth", d)
	}
	if m := a.NextMap(); m["cmd"] != "LEFT" || id(m) != gID {
		t.Fatalf("want LEFT of %s, got %v", gID, m)
	}
	g2 := guest(t, rs[0])
	g2j := join(t, g2, "room", "chat", tok)
	if m := a.NextMap(); m["cmd"] != "JOINED" || id(m) != id(g2j) {
		t.Fatalf("want JOINED of the reconnected guest, got %v", m)
	}
}

// The cluster's metrics count what crossed instances; a relay without
// NATS has none of them.
func TestClusterMetrics(t *testing.T) {
	_, rs := startCluster(t, 2, nil)
	a := authority(t, rs[0])
	aj := join(t, a, "c", "p", "")
	b := authority(t, rs[1])
	join(t, b, "c", "p", "")
	a.NextMap()
	a.Send(fmt.Sprintf(`{"channel":%v,"cmd":"x","to":-1}`, aj["channel"]))
	b.Next()

	_, body := httpGetAll(t, "http://"+rs[1].Addr+"/metrics")
	for sample, want := range map[string]float64{
		`relay_cluster_nats_connected`:                        1,
		`relay_cluster_live_instances`:                        2,
		`relay_cluster_events_received_total{kind="message"}`: 1,
		`relay_cluster_events_sent_total{kind="join"}`:        1,
		`relay_cluster_gaps_total`:                            0,
		`relay_cluster_instance_deaths_total`:                 0,
	} {
		if got := metric(t, body, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	if !strings.Contains(body, `relay_cluster_kv_seconds_count{op="member_put"}`) {
		t.Error("no KV latency for member_put")
	}
	_, body = httpGetAll(t, "http://"+startRelay(t, nil).Addr+"/metrics")
	if strings.Contains(body, "relay_cluster_") {
		t.Error("a relay without NATS has cluster metrics")
	}
}

// suites are the conformance, HTTP API and lifecycle tests that
// TestSuitesOnNATS runs again on NATS. TestHealthAndShutdown is left out
// of the three-instance run: it drains "the relay" and expects every
// client closed, while a drain of one instance closes only its own
// (TestClusterDrain covers that).
var suites = []string{
	"TestInvalidDataAndCmd", "TestGrantChecksInOrder", "TestGrantedFrame", "TestJoinChecks",
	"TestVisibility", "TestMessages", "TestSetExtra", "TestLeaveAndRejoin", "TestTokenLifecycle",
	"TestChannelLimit", "TestStaticTokensAndIPRules", "TestKeepalive", "TestHammer",
	"TestHTTPTokenJoinPublishDeliver", "TestHTTPTokenRulesMatchGrant", "TestHTTPAuthorities",
	"TestHTTPBadInput", "TestRetainedMessages", "TestRetainLimit", "TestWebSocketUnderV1",
	"TestRetainByteLimit", "TestServerPublishAndMintToken",
}

// The existing suites, unchanged, against one instance on NATS and against
// three instances with the clients spread over them round-robin (the test
// binary runs again with RELAY_TEST_INSTANCES set): the same frames, after
// ids are normalised, as one process gives.
func TestSuitesOnNATS(t *testing.T) {
	if os.Getenv(instancesVar) != "" {
		t.Skip("already running on NATS")
	}
	if testing.Short() {
		t.Skip("runs the suites twice more; skipped with -short")
	}
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("instances=%d", n), func(t *testing.T) {
			run := slices.Clone(suites)
			if n == 1 {
				run = append(run, "TestHealthAndShutdown")
			}
			cmd := exec.Command(os.Args[0], "-test.run", "^("+strings.Join(run, "|")+")$", "-test.count", "1")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", instancesVar, n))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the suites on %d instance(s) failed: %v\n%s", n, err, out)
			}
		})
	}
}

// NATS out of reach when an instance starts: it starts anyway, not ready
// (/readyz 503, new WebSockets and HTTP calls that need the shared state
// 503), and joins the cluster by itself once NATS is there.
func TestClusterStartsWithoutNATS(t *testing.T) {
	srv := natstest.Start(t)
	srv.Stop()
	start := time.Now()
	r := startRelay(t, func(c *relay.Config) { c.NATSURL, c.ClusterNodeTTL = srv.URL(), nodeTTL })
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("starting without NATS took %s", d)
	}
	if st := readyz(t, r); st != http.StatusServiceUnavailable {
		t.Fatalf("/readyz %d without NATS, want 503", st)
	}
	if _, resp, err := relaytest.TryDial(t, r.URL, nil); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a WebSocket without NATS: %v, want a 503 handshake", err)
	}
	st, m := newAPI(t, r, authAddr, "").post("/v1/tokens", map[string]any{"channel": "c", "protocol": "p"})
	wantStatus(t, st, m, http.StatusServiceUnavailable, "unavailable")

	srv.Restart()
	eventually(t, 10*time.Second, "/readyz 200 once NATS is up", func() bool { return readyz(t, r) == http.StatusOK })
	a := authority(t, r)
	join(t, a, "c", "p", "")
}

// filter-message runs once, on the instance where the message enters: the
// member on the other instance gets the rewritten message, not rewritten
// again, and the other instance's plugin is never called.
func TestClusterFilterRunsOnceOnTheSendersInstance(t *testing.T) {
	srv := natstest.Start(t)
	var rs []*relaytest.Relay
	for range 2 {
		rs = append(rs, startRelay(t, func(c *relay.Config) {
			c.NATSURL, c.ClusterNodeTTL = srv.URL(), nodeTTL
			withPlugins(t, c, map[string]string{"first": `{"tag":"A"}`}, "first")
		}))
	}
	a := authority(t, rs[0])
	aj := join(t, a, "c", "p", "")
	b := authority(t, rs[1])
	bj := join(t, b, "c", "p", "")
	a.NextMap() // JOINED of b
	a.Send(fmt.Sprintf(`{"cmd":"rewrite","channel":%v,"to":-1,"text":"hi"}`, aj["channel"]))
	b.Expect(fmt.Sprintf(`{"channel":%v,"success":true,"from":%s,"cmd":"rewrite","text":"HI","trail":"A"}`, bj["channel"], id(aj)))
	_, body := httpGetAll(t, "http://"+rs[1].Addr+"/metrics")
	if strings.Contains(body, `relay_plugin_calls_total{hook="filter-message"`) {
		t.Fatal("the receiving instance ran filter-message")
	}
}
