package main

import (
	"math/bits"
	"time"
)

// histSub is the number of linear sub-buckets per power of two: values are
// kept with about 3% relative precision.
const (
	histSubBits = 5
	histSub     = 1 << histSubBits
	histBuckets = 2*histSub + 64*histSub
)

// hist is a log-linear latency histogram in nanoseconds. Each receiver owns
// one (no locking on the hot path); they are merged after a run.
type hist struct {
	counts [histBuckets]uint64
	n      uint64
	max    int64
}

func histIndex(v int64) int {
	if v < 0 {
		v = 0
	}
	u := uint64(v)
	if u < 2*histSub {
		return int(u)
	}
	shift := bits.Len64(u) - histSubBits - 1 // top = u>>shift in [histSub, 2*histSub)
	return 2*histSub + (shift-1)*histSub + int(u>>shift) - histSub
}

// histValue returns the middle of bucket i.
func histValue(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	i -= 2 * histSub
	shift := i/histSub + 1
	top := int64(i%histSub + histSub)
	return top<<shift + (int64(1)<<shift)/2
}

func (h *hist) add(v int64) {
	h.counts[histIndex(v)]++
	h.n++
	if v > h.max {
		h.max = v
	}
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the q-quantile (0..1).
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	want := uint64(q*float64(h.n) + 0.5)
	if want < 1 {
		want = 1
	}
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= want {
			v := histValue(i)
			if v > h.max {
				v = h.max
			}
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// latency is the JSON form of a histogram, in microseconds.
type latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

func (h *hist) summary() *latency {
	if h.n == 0 {
		return nil
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()/10) / 100 }
	return &latency{Count: h.n, P50: us(h.quantile(0.5)), P99: us(h.quantile(0.99)),
		P999: us(h.quantile(0.999)), Max: us(time.Duration(h.max))}
}
