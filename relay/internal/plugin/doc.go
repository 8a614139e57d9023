// Package plugin is the relay's WebAssembly plugin host, on wazero.
//
// Load compiles the configured plugins once (keeping compiled code in an
// on-disk cache), checks each one's ABI version, imports and configuration,
// and starts a pool of instances per plugin. The relay then calls
// AuthorizeJoin, FilterMessage and OnTokenCreate with typed inputs; each
// runs the plugins implementing that hook in order and returns the final
// outcome, with failures already turned into the hook's failure policy.
//
// Files: abi.go (the ABI constants, mirrored in plugin-sdk/abi.go),
// hooks.go (the table of hook points), calls.go (one method per hook),
// host.go (Load, Close, host functions), instance.go (instantiation, the
// per-call deadline, the host's sleep, decoding answers), pool.go (the
// instances, handed to waiting client addresses in turn), logging.go (bounded
// per-plugin log output), bodyindex.go (the body index the guest reads
// fields through). plugin-sdk/ABI.md specifies the contract.
//
// Every call has a deadline, which covers the wait for a free instance: a
// per-instance timer cancels the instance's context, wazero
// (WithCloseOnContextDone) stops the guest at its next loop iteration or
// call, and the host's WASI sleep returns. An instance whose call failed in
// a way that may have broken its state (trap, panic, deadline, bad output)
// is closed and replaced at once, in the background.
package plugin
