// Package sdk is the Go SDK for relay plugins: WebAssembly modules that
// the relay runs in a sandbox at its hook points (authorize-join,
// filter-message, on-token-create).
//
// A plugin registers one typed handler per hook from an init function and
// is built with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// The SDK owns the ABI (ABI.md): the exports, the exchange buffer, the ABI
// version, the record format and turning a panic into a plugin error. It
// gives typed access to each hook's input, field access to message bodies
// without decoding JSON (Body), the plugin's configuration (Config,
// HandleConfigure), logging (Debug, Info, Warn, Error) and the host's clock
// (Now). See README.md.
package sdk
