//go:build race

package relay_test

import "time"

// raceEnabled scales time bounds: the race detector slows map and JSON work
// several times.
const raceEnabled = true

// schedulingSlack is how late a timed answer may be on top of its deadline:
// the race detector slows every goroutine several times over.
const schedulingSlack = 400 * time.Millisecond
