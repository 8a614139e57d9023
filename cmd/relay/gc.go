package main

import (
	"os"
	"runtime/debug"
	"runtime/metrics"
)

// defaultGOGC is the garbage collector's target when GOGC is not set: the
// heap may grow 50 % past what was live at the last collection, not Go's
// 100 %. A relay's heap is mostly long-lived connection state and its hot
// path allocates little per message, so collections are driven mostly by
// connects: the smaller headroom costs ~6-10 % more CPU per connect+join
// and a few per cent in sustained fan-out, for about a sixth less memory
// per idle connection (relay/RATIONALE.md, "Why does the relay run its
// collector at GOGC=50?"). GOGC set in the environment to a value,
// GOGC=100 included, wins; an empty GOGC is unset (the runtime ignores it
// too).
const defaultGOGC = 50

// setGCTarget applies defaultGOGC unless the environment sets GOGC, and
// returns the target in force.
func setGCTarget() int {
	if os.Getenv("GOGC") != "" {
		s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(s)
		return int(s[0].Value.Uint64())
	}
	debug.SetGCPercent(defaultGOGC)
	return defaultGOGC
}
