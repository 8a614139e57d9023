package plugin

import (
	"crypto/sha256"
	"sync"
)

// compileLocks serializes compiling identical module binaries. wazero
// v1.12 publishes a module it loaded from the compilation cache before it
// has compiled the module's entry preambles, so a second CompileModule of
// the same bytes running at that moment gets a module without them and
// instantiating it panics (index out of range in moduleEngine.NewFunction).
// Two plugins built from one .wasm file under different names hit it.
type compileLocks struct {
	m sync.Map // [32]byte -> *sync.Mutex
}

// lock takes the lock of bin's content and returns its unlock.
func (c *compileLocks) lock(bin []byte) (unlock func()) {
	mu, _ := c.m.LoadOrStore(sha256.Sum256(bin), new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}
