package relay

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/relay-project/relay/relay/internal/clientid"
	"github.com/relay-project/relay/relay/internal/cluster"
	"github.com/relay-project/relay/relay/internal/hub"
)

// This file turns cluster mode on (RELAY_NATS_URL): the same hub, with a
// broker under it, and the shared token store and client id blocks. With
// RELAY_NATS_URL unset none of it runs: no connection, no goroutine.

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func validPrefix(p string) bool { return prefixRE.MatchString(p) }

// joinCluster connects to NATS and puts the shared state under the hub.
func (s *Server) joinCluster(mem *hub.Memory) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := cluster.Start(ctx, cluster.Config{
		URL: s.cfg.NATSURL, CredsFile: s.cfg.NATSCredsFile, Prefix: s.cfg.NATSPrefix,
		Replicas: s.cfg.NATSKVReplicas, NodeTTL: s.cfg.ClusterNodeTTL, Rejoin: s.cfg.TokenRejoin,
		RetainMaxBytes: int64(s.cfg.RetainMaxBytes), Version: s.cfg.Version, Logger: s.log, Now: s.cfg.Now,
	})
	if err != nil {
		return fmt.Errorf("relay: RELAY_NATS_URL: %w", err)
	}
	broker, err := cluster.NewBroker(node, mem)
	if err != nil {
		node.Close()
		return fmt.Errorf("relay: RELAY_NATS_URL: %w", err)
	}
	mem.Broker = broker
	s.node, s.broker = node, broker
	s.tokens = node.Tokens()
	s.ids = clientid.NewSource(node)
	return nil
}

// leaveCluster stops the broker and deletes this instance's lease, so the
// others report its remaining members LEFT at once.
func (s *Server) leaveCluster() {
	if s.node == nil {
		return
	}
	s.broker.Close()
	s.node.Close()
}

// clusterTimeout bounds one request's waits on the shared state, so a JOIN
// answers unavailable instead of hanging while NATS is out of reach.
const clusterTimeout = 5 * time.Second

// opContext is the context of a request that may wait on the shared state.
func (s *Server) opContext() (context.Context, context.CancelFunc) {
	if s.node == nil {
		return context.Background(), func() {}
	}
	return context.WithTimeout(context.Background(), clusterTimeout)
}
