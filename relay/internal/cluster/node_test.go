package cluster_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/relay-project/relay/relay/internal/cluster"
	"github.com/relay-project/relay/relay/internal/cluster/natstest"
	"github.com/relay-project/relay/relay/internal/relaytest"
)

func TestMain(m *testing.M) { relaytest.Main(m) }

// testConfig is a node's configuration on srv with a short TTL.
func testConfig(srv *natstest.Server) cluster.Config {
	return cluster.Config{URL: srv.URL(), Prefix: "t", Replicas: 1, NodeTTL: 3 * time.Second, Rejoin: 30 * time.Second, Logger: slog.New(slog.DiscardHandler)}
}

// startNode starts a node and closes it when the test ends.
func startNode(t *testing.T, cfg cluster.Config) *cluster.Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := cluster.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Instances get distinct node numbers, and client id blocks drawn from
// several instances at once are never handed out twice.
func TestNodeNumbersAndBlocksAreUnique(t *testing.T) {
	srv := natstest.Start(t)
	var nodes []*cluster.Node
	for range 3 {
		nodes = append(nodes, startNode(t, testConfig(srv)))
	}
	if a, b, c := nodes[0].ID(), nodes[1].ID(), nodes[2].ID(); a == b || b == c || a == c {
		t.Fatalf("node numbers %d %d %d", a, b, c)
	}
	waitFor(t, 5*time.Second, "every node sees three live", func() bool {
		return nodes[0].LiveNodes() == 3 && nodes[2].LiveNodes() == 3 && nodes[0].Ready()
	})
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				b, err := n.Next(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[b] {
					t.Errorf("block %d handed out twice", b)
				}
				seen[b] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 150 {
		t.Fatalf("%d distinct blocks, want 150", len(seen))
	}
}

// An instance that dies without a goodbye is reported lost within the
// node TTL plus 2s; one that closes is reported at once.
func TestDeadNodeIsReportedWithinTheBound(t *testing.T) {
	srv := natstest.Start(t)
	lost := make(chan uint64, 4)
	cfg := testConfig(srv)
	cfg.OnNodeLost = func(id uint64) { lost <- id }
	watcher := startNode(t, cfg)
	crashed := startNode(t, testConfig(srv))
	closed := startNode(t, testConfig(srv))
	waitFor(t, 5*time.Second, "three live", func() bool { return watcher.LiveNodes() == 3 })

	start := time.Now()
	closed.Close()
	select {
	case id := <-lost:
		if id != closed.ID() {
			t.Fatalf("lost node %d, want %d", id, closed.ID())
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("a closed node was reported after %s", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a closed node was never reported")
	}

	start = time.Now()
	crashed.Crash()
	bound := cfg.NodeTTL + 2*time.Second
	select {
	case id := <-lost:
		if id != crashed.ID() {
			t.Fatalf("lost node %d, want %d", id, crashed.ID())
		}
		d := time.Since(start)
		t.Logf("a killed node was reported after %s (bound %s)", d, bound)
		if d > bound {
			t.Fatalf("a killed node was reported after %s, over the bound %s", d, bound)
		}
	case <-time.After(bound + 5*time.Second):
		t.Fatal("a killed node was never reported")
	}
	if watcher.Live(crashed.ID()) {
		t.Fatal("the killed node is still live")
	}
}

// Readiness follows the NATS connection: false while the server is down,
// true again once it is back.
func TestReadinessFollowsNATS(t *testing.T) {
	srv := natstest.Start(t)
	n := startNode(t, testConfig(srv))
	waitFor(t, 5*time.Second, "ready", n.Ready)
	srv.Stop()
	waitFor(t, 5*time.Second, "not ready with NATS down", func() bool { return !n.Ready() })
	srv.Restart()
	waitFor(t, 10*time.Second, "ready after NATS is back", n.Ready)
}

// A renewal stored by NATS whose answer was lost moves the lease's
// revision under the next renewal: that is not a lapse. The instance
// keeps its lease and its members, and nobody sees it die.
func TestLostRenewalAnswerIsNotALapse(t *testing.T) {
	srv := natstest.Start(t)
	a := startNode(t, testConfig(srv))
	b := startNode(t, testConfig(srv))
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, "t_nodes")
	if err != nil {
		t.Fatal(err)
	}
	key := strconv.FormatUint(a.ID(), 10)
	for range 3 { // as if three renewals' answers were lost
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Update(ctx, key, e.Value(), e.Revision()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(testConfig(srv).NodeTTL / 2)
	}
	if got := a.Lapses(); got != 0 {
		t.Fatalf("lapses %d, want 0", got)
	}
	if !a.Ready() || b.Deaths() != 0 {
		t.Fatalf("ready %v, deaths seen by the other %d: want ready and none", a.Ready(), b.Deaths())
	}
}
