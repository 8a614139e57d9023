package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

// summarize reads JSON lines written by earlier runs and prints, for every
// (scenario, target, label, n/k, rate) group, the number of runs and the
// median of each figure: the numbers BENCHMARKS.md quotes. "of limit" is
// the median of the per-round fractions (see fillFractions).
func summarize(files []string, out io.Writer) error {
	type key struct {
		Scenario, Target, Label string
		NK                      int
		Rate                    float64
	}
	groups := map[key][]*result{}
	var order []key
	var all []*result
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("summary: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var r result
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				f.Close()
				return fmt.Errorf("summary: %s: %w", name, err)
			}
			all = append(all, &r)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return fmt.Errorf("summary: %s: %w", name, err)
		}
	}
	// Recompute the fractions round by round over everything read, so files
	// from older versions of the tool are summarized the same way.
	for _, r := range all {
		r.LimitFraction = 0
	}
	fillFractions(all)
	for _, r := range all {
		if r.Error != "" {
			continue
		}
		k := key{r.Scenario, r.Target, r.Label, r.N + r.K, r.Rate}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "scenario\ttarget\tlabel\tn/k\trate\truns\tdeliv/s\tof limit\tjoins/s\tp50µs\tp99µs\tp99.9µs\tloss\tsrvCPU%\tsrv µs/op\tgenCPU%\tallCPU%\tKB/conn\tsurvived\t")
	for _, k := range order {
		rs := groups[k]
		med := func(get func(*result) float64) float64 {
			v := make([]float64, 0, len(rs))
			for _, r := range rs {
				v = append(v, get(r))
			}
			return median(v)
		}
		lat := func(get func(*latency) float64) string {
			if rs[0].Latency == nil {
				return "-"
			}
			return f0(med(func(r *result) float64 {
				if r.Latency == nil {
					return 0
				}
				return get(r.Latency)
			}))
		}
		var loss int64
		for _, r := range rs {
			loss += r.Loss
		}
		frac := med(func(r *result) float64 { return r.LimitFraction })
		fs := "-"
		if frac > 0 {
			fs = fmt.Sprintf("%.0f%%", frac*100)
		}
		surv := "-"
		if k.Scenario == "idle" || k.Scenario == "hold" {
			surv = fmt.Sprintf("%.0f/%d", med(func(r *result) float64 { return float64(r.Survived) }), k.NK)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			k.Scenario, k.Target, k.Label, k.NK, f0(k.Rate), len(rs),
			f0(med(func(r *result) float64 { return r.DeliveriesPerS })), fs,
			f0(med(func(r *result) float64 { return r.JoinsPerS })),
			lat(func(l *latency) float64 { return l.P50 }), lat(func(l *latency) float64 { return l.P99 }),
			lat(func(l *latency) float64 { return l.P999 }), loss,
			f1(med(func(r *result) float64 { return r.ServerCPUPct })), f2(med(func(r *result) float64 { return r.ServerCPUPerOpUS })), f1(med(func(r *result) float64 { return r.ClientCPUPct })),
			f1(med(func(r *result) float64 { return r.MachineCPUPct })), f2(med(func(r *result) float64 { return r.RSSPerConnKB })), surv)
	}
	return w.Flush()
}
