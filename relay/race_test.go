//go:build race

package relay_test

import "time"

// schedulingSlack is how late a timed answer may be on top of its deadline:
// the race detector slows every goroutine several times over.
const schedulingSlack = 400 * time.Millisecond
