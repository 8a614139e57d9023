//go:build !wasip1

package sdk

import (
	"os"
	"time"
)

// Outside a wasm host (unit tests of plugin logic), logging goes to stderr
// and the clock is the process's.

func logMessage(level int32, msg string) {
	os.Stderr.WriteString(levelName(level) + " " + msg + "\n")
}

// Now returns the host's wall clock.
func Now() time.Time { return time.Now() }
