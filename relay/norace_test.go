//go:build !race

package relay_test

import "time"

const raceEnabled = false

// schedulingSlack is how late a timed answer may be on top of its deadline
// on a shared two-core machine.
const schedulingSlack = 100 * time.Millisecond
