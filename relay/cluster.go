package relay

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relay-project/relay/relay/internal/clientid"
	"github.com/relay-project/relay/relay/internal/cluster"
	"github.com/relay-project/relay/relay/internal/httpapi"
	"github.com/relay-project/relay/relay/internal/hub"
	"github.com/relay-project/relay/relay/internal/metrics"
	"github.com/relay-project/relay/relay/internal/retain"
	"github.com/relay-project/relay/relay/protocol"
)

// This file turns cluster mode on (RELAY_NATS_URL): the same hub, with a
// broker under it, and the shared token store and client id blocks. With
// RELAY_NATS_URL unset none of it runs: no connection, no goroutine.

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

func validPrefix(p string) bool { return prefixRE.MatchString(p) }

// joinCluster connects to NATS and puts the shared state under the hub.
func (s *Server) joinCluster(mem *hub.Memory, reg prometheus.Registerer) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var broker *cluster.Broker
	var node *cluster.Node
	observe := metrics.RegisterCluster(reg, metrics.ClusterGauges{
		Connected: func() float64 { return boolGauge(node.Connected()) },
		LiveNodes: func() float64 { return float64(node.LiveNodes()) },
		Deaths:    func() float64 { return float64(node.Deaths()) },
		Lapses:    func() float64 { return float64(node.Lapses()) },
		EventsIn:  func(k string) float64 { return float64(broker.Stats().In[k]) },
		EventsOut: func(k string) float64 { return float64(broker.Stats().Out[k]) },
		Gaps:      func() float64 { return float64(broker.Stats().Gaps) },
		Resyncs:   func() float64 { return float64(broker.Stats().Resyncs) },
		Lost:      func() float64 { return float64(broker.Stats().Dropped) },
	})
	node, err := cluster.Start(ctx, cluster.Config{
		URL: s.cfg.NATSURL, CredsFile: s.cfg.NATSCredsFile, Prefix: s.cfg.NATSPrefix,
		Replicas: s.cfg.NATSKVReplicas, NodeTTL: s.cfg.ClusterNodeTTL, Rejoin: s.cfg.TokenRejoin,
		RetainMaxBytes: int64(s.cfg.RetainMaxBytes), RetainMaxMessages: int64(s.cfg.RetainMaxMessages), Version: s.cfg.Version, Logger: s.log, Now: s.cfg.Now,
		Observe: observe,
	})
	if err != nil {
		return fmt.Errorf("relay: RELAY_NATS_URL: %w", err)
	}
	broker, err = cluster.NewBroker(node, mem)
	if err != nil {
		node.Close()
		return fmt.Errorf("relay: RELAY_NATS_URL: %w", err)
	}
	mem.Broker = broker
	s.node, s.broker, s.mem = node, broker, mem
	s.tokens = node.Tokens()
	s.retained = node.Retained()
	s.retainedNow = broker.RetainedOf
	s.ids = clientid.NewSource(node)
	return nil
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
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

// publishCluster delivers an HTTP publish (already filtered and, when
// asked, retained) to the local members and announces it to the other
// instances, whether or not this one has members in the channel.
// Delivered counts the members addressed on every instance, not
// acknowledgements.
func (s *Server) publishCluster(ctx context.Context, p httpapi.Publication, ch *hub.Channel, out httpapi.Published) (httpapi.Published, error) {
	var members []protocol.Member
	if ch != nil {
		members = s.hub.Members(ch)
	} else {
		var err error
		if members, err = s.remoteMembers(ctx, p.Channel, p.Protocol); err != nil {
			return httpapi.Published{}, unavailableError(err)
		}
	}
	if p.To >= 0 && !slices.ContainsFunc(members, func(m protocol.Member) bool { return m.ID == p.To }) {
		return httpapi.Published{}, &httpapi.Error{Status: http.StatusNotFound, Code: string(protocol.CodeInvalidTo), Message: "Invalid 'to': not a member of the channel."}
	}
	msg := published(0, p.Cmd, p.Fields)
	ev := hub.Event{Kind: hub.EventMessage, To: p.To, Tail: msg.Data[msg.Tail:]}
	var retained *retain.Message
	if !out.RetainedUntil.IsZero() {
		retained = &retain.Message{Cmd: p.Cmd, Fields: p.Fields, Published: out.RetainedUntil.Add(-p.Retain), Expires: out.RetainedUntil}
	}
	if ch != nil {
		s.mem.Deliver(ch, ev)
	}
	if err := s.broker.Publish(p.Channel, p.Protocol, ev, retained); err != nil {
		return httpapi.Published{}, unavailableError(err) // nobody here got it either
	}
	out.Delivered = len(members)
	if p.To >= 0 {
		out.Delivered = 1
	}
	return out, nil
}

// remoteMembers reads the members of a channel this instance has no
// member in from the other instances' records.
func (s *Server) remoteMembers(ctx context.Context, name, proto string) ([]protocol.Member, error) {
	rms, err := s.broker.Members(ctx, name, proto)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.Member, len(rms))
	for i, m := range rms {
		out[i] = protocol.Member{ID: m.ID, Info: m.Info}
	}
	return out, nil
}

// unavailableError is the HTTP API's answer when the shared state cannot
// be reached.
func unavailableError(err error) error {
	return &httpapi.Error{Status: http.StatusServiceUnavailable, Code: string(protocol.CodeUnavailable), Message: protocol.CodeUnavailable.Text()}
}
