package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// joinCost is what one step of the joincost scenario costs in NATS
// messages: the median over the rounds of the messages the instances sent
// to NATS (in: KV requests and broker publishes) and NATS delivered to
// them (out: replies, events to the other instances, watch updates).
type joinCost struct {
	In  float64 `json:"nats_in"`
	Out float64 `json:"nats_out"`
}

// joinCostSteps name the steps in the order they run in every round.
var joinCostSteps = []string{
	"1 authority JOIN, first member of the channel (instance A)",
	"2 GRANT (instance A)",
	"3 token JOIN, first member on its instance (B)",
	"4 token JOIN, instance already in the channel (B)",
	"5 authority JOIN, instance already in the channel (B)",
	"6 disconnect of a member (B), others stay",
}

// joinCostSettle is how long a step's asynchronous traffic (events to the
// other instances) is given before the counts are read. Node leases renew
// every third of RELAY_CLUSTER_NODE_TTL: a renewal falling in a window is
// noise the median over rounds removes.
const joinCostSettle = 100 * time.Millisecond

// runJoinCost counts the NATS messages of each kind of JOIN, one at a time
// on fresh channels, -k rounds (at most 100).
func runJoinCost(ctx context.Context, tgt target, o connOptions, res *result) error {
	if tgt.nats == nil {
		return fmt.Errorf("joincost needs a cluster target (-instances)")
	}
	rounds := min(o.K, 100)
	res.K = rounds
	samples := make([][]natsCounts, len(joinCostSteps))
	start := time.Now()
	d := &net.Dialer{Timeout: 10 * time.Second}
	for r := range rounds {
		name := fmt.Sprintf("bench-cost-%d-%d", time.Now().UnixNano(), r)
		var closers []func()
		step := func(i int, fn func() error) error {
			time.Sleep(joinCostSettle)
			n0, _ := tgt.natsNow()
			if err := fn(); err != nil {
				return fmt.Errorf("round %d, step %q: %w", r, joinCostSteps[i], err)
			}
			time.Sleep(joinCostSettle)
			n1, _ := tgt.natsNow()
			samples[i] = append(samples[i], n1.sub(n0))
			return nil
		}
		var a *publisher
		var tok string
		var leaver *wsConn
		err := step(0, func() (err error) {
			a, err = newPublisher(ctx, tgt, name, 4)
			return err
		})
		if err == nil {
			closers = append(closers, a.ws.close)
			err = step(1, func() (err error) {
				a.mint(ctx, 1)
				tok, err = a.take(ctx)
				return err
			})
		}
		if err == nil {
			err = step(2, func() (err error) {
				leaver, err = joinMember(ctx, d, tgt.at(1), name, tok, 2048)
				return err
			})
		}
		if err == nil {
			a.mint(ctx, 1)
			if tok, err = a.take(ctx); err == nil {
				err = step(3, func() error {
					ws, err := joinMember(ctx, d, tgt.at(1), name, tok, 2048)
					if err == nil {
						closers = append(closers, ws.close)
					}
					return err
				})
			}
		}
		if err == nil {
			err = step(4, func() error {
				b, err := newPublisher(ctx, tgt.at(1), name, 1)
				if err == nil {
					closers = append(closers, b.ws.close)
				}
				return err
			})
		}
		if err == nil {
			err = step(5, func() error { leaver.close(); return nil })
		}
		for _, c := range closers {
			c()
		}
		if err != nil {
			return err
		}
	}
	res.fill(tgt, start, time.Since(start))
	res.Instances = tgt.instances()
	res.JoinCost = map[string]joinCost{}
	for i, s := range samples {
		res.JoinCost[joinCostSteps[i]] = joinCost{In: medianOf(s, func(c natsCounts) int64 { return c.in }), Out: medianOf(s, func(c natsCounts) int64 { return c.out })}
	}
	return nil
}

func medianOf(s []natsCounts, f func(natsCounts) int64) float64 {
	v := make([]float64, len(s))
	for i, c := range s {
		v[i] = float64(f(c))
	}
	return median(v)
}

// printJoinCost adds the joincost steps to the table.
func printJoinCost(tab io.Writer, rs []*result) {
	w := tabwriter.NewWriter(tab, 0, 0, 2, ' ', 0)
	for _, r := range rs {
		if len(r.JoinCost) == 0 {
			continue
		}
		fmt.Fprintf(w, "joincost %s (%d instances, median of %d rounds)\tNATS in\tNATS out\t\n", r.Target, r.Instances, r.K)
		steps := make([]string, 0, len(r.JoinCost))
		for s := range r.JoinCost {
			steps = append(steps, s)
		}
		sort.Strings(steps)
		for _, s := range steps {
			c := r.JoinCost[s]
			fmt.Fprintf(w, "  %s\t%s\t%s\t\n", strings.TrimSpace(s), strings.TrimSuffix(fmt.Sprintf("%.1f", c.In), ".0"), strings.TrimSuffix(fmt.Sprintf("%.1f", c.Out), ".0"))
		}
	}
	w.Flush()
}
