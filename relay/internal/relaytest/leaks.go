package relaytest

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"
)

// Main runs a package's tests (call it from TestMain) and fails the run
// when goroutines outlive them: a connection, writer or timer the relay
// or a client forgot to stop. A couple of runtime goroutines may come and
// go, so up to two extra are tolerated.
func Main(m *testing.M) {
	base := runtime.NumGoroutine()
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > base+2 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > base+2 {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "leaked goroutines: %d at start, %d at end\n%s\n", base, n, buf)
			code = 1
		}
	}
	os.Exit(code)
}
