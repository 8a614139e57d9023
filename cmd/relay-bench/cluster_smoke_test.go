package main

import (
	"context"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/relay-project/relay/relay"
)

// clusterTarget starts a NATS server in this process and n relay instances
// on it, as one target that spreads members over them.
func clusterTarget(t *testing.T, n int) target {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	var insts []target
	for range n {
		cfg := relay.DefaultConfig()
		cfg.NATSURL = ns.ClientURL()
		insts = append(insts, serveRelay(t, cfg))
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() }) // after the relays (cleanups run last first)
	tgt := insts[0]
	tgt.name, tgt.peers = "relay-nats", insts[1:]
	tgt.nats = func() (natsCounts, error) {
		cz, err := ns.Connz(&natsserver.ConnzOptions{Limit: 4096})
		if err != nil {
			return natsCounts{}, err
		}
		return sumConnz(cz), nil
	}
	return tgt
}

// Spread over three instances, fan-out delivers every broadcast to every
// subscriber wherever it is, and a broadcast costs NATS one message in and
// one out per other instance (NoEcho: none back to the sender's) whatever
// the number of subscribers: membership traffic does not grow with
// messages. The join costs are counted per step.
func TestSmokeCluster(t *testing.T) {
	tgt := clusterTarget(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var perOp []float64
	for _, n := range []int{9, 30} {
		var r result
		if err := runFanout(ctx, tgt, fanoutOptions{N: n, Size: 200, Duration: 300 * time.Millisecond, Window: 64, Batch: 8}, &r); err != nil {
			t.Fatal(err)
		}
		if r.Published == 0 || r.Delivered != r.Published*int64(n) || r.Reorder != 0 {
			t.Fatalf("n=%d over 3 instances: published %d, delivered %d, reordered %d", n, r.Published, r.Delivered, r.Reorder)
		}
		if r.Instances != 3 || r.NATSInPerOp < 0.9 || r.NATSInPerOp > 1.1 || r.NATSOutPerOp < 1.8 || r.NATSOutPerOp > 2.2 {
			t.Fatalf("n=%d: %d instances, NATS in %.3f and out %.3f per broadcast, want 1 and 2", n, r.Instances, r.NATSInPerOp, r.NATSOutPerOp)
		}
		perOp = append(perOp, r.NATSOutPerOp)
	}
	t.Logf("NATS messages out per broadcast: %v for 9 and 30 subscribers", perOp)

	var r result
	if err := runJoinCost(ctx, tgt, connOptions{K: 3}, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.JoinCost) != len(joinCostSteps) {
		t.Fatalf("join costs %v", r.JoinCost)
	}
	for _, s := range joinCostSteps {
		if c := r.JoinCost[s]; c.In < 1 {
			t.Errorf("%s: %+v, want at least one NATS message", s, c)
		}
	}
	t.Logf("join costs %v", r.JoinCost)
}
